from __future__ import annotations

import pytest
import torch
from torch import nn

from synthgap.errors import SynthgapError
from synthgap.models import (
    ModelConfig,
    build_model,
    freeze,
    frozen_batchnorms,
    get_family,
    layer_of,
    reestimate_batchnorm,
    reinitialize,
    train_mode,
    trainable_layers,
    transfer,
)

MAP = get_family("resnet18").layer_map
SMALL = ModelConfig(width=0.25, stem="cifar")


def make_model(seed: int) -> nn.Module:
    """A small ResNet-18 whose parameters and BatchNorm statistics all differ from a fresh model's."""
    torch.manual_seed(seed)
    model = build_model(SMALL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        model.train()
        model(torch.randn(4, 3, 16, 16))  # updates every running_mean / running_var / num_batches_tracked
    return model


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_layer_map_has_18_layers():
    assert sorted(MAP) == list(range(1, 19))
    assert MAP[18] == ("fc",)


@pytest.mark.parametrize("width", [1.0, 0.25])
def test_every_state_key_in_exactly_one_layer(width):
    keys = build_model(ModelConfig(width=width)).state_dict().keys()
    layers = {key: layer_of(key, MAP) for key in keys}  # raises unless exactly one owner
    assert set(layers.values()) == set(range(1, 19))
    assert layers["conv1.weight"] == 1 and layers["fc.bias"] == 18
    assert layers["layer2.0.downsample.0.weight"] == 7
    assert layers["layer3.0.downsample.1.running_var"] == 11
    assert layers["layer4.0.downsample.1.num_batches_tracked"] == 15


def test_layer_of_unknown_key_raises():
    with pytest.raises(SynthgapError):
        layer_of("layer5.0.conv1.weight", MAP)


@pytest.mark.parametrize("n", [0, 1, 7, 16, 18])
def test_transfer_copies_exactly_the_first_n_layers(n):
    target, source = make_model(0), make_model(1)
    before, source_state = snapshot(target), snapshot(source)
    transfer(target, source, n, MAP)
    after = target.state_dict()
    for key, value in after.items():
        expected = source_state[key] if layer_of(key, MAP) <= n else before[key]
        assert torch.equal(value, expected), key
        if layer_of(key, MAP) <= n and not key.endswith("num_batches_tracked"):
            assert not torch.equal(before[key], source_state[key]), key  # the copy is observable


@pytest.mark.parametrize("n", [19, -1])
def test_transfer_out_of_range_raises(n):
    with pytest.raises(SynthgapError):
        transfer(make_model(0), make_model(1), n, MAP)


def test_transfer_shape_mismatch_raises():
    with pytest.raises(SynthgapError, match="conv1.weight"):
        transfer(make_model(0), build_model(ModelConfig(width=0.5, stem="cifar")), 1, MAP)


def test_reinitialize_resets_layers_from_first():
    first = 10
    model = make_model(0)
    before = snapshot(model)
    reinitialize(model, first, MAP)
    after = model.state_dict()
    for key, value in after.items():
        layer = layer_of(key, MAP)
        if layer < first:
            assert torch.equal(value, before[key]), key
        elif key.endswith("running_mean") or key.endswith("num_batches_tracked"):
            assert not value.any(), key
        elif key.endswith("running_var"):
            assert torch.equal(value, torch.ones_like(value)), key
        else:
            assert not torch.equal(value, before[key]), key
    assert torch.equal(after["layer4.1.bn2.weight"], torch.ones(128))
    assert not after["layer3.0.downsample.1.running_mean"].any()  # layer 11's shortcut is re-initialised too


def test_freeze_and_train_mode_keep_frozen_layers_fixed():
    model = make_model(0)
    freeze(model, 16, MAP)
    assert trainable_layers(model, MAP) == [17, 18]
    expected_bns = {
        id(m)
        for name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d) and layer_of(f"{name}.weight", MAP) <= 16
    }
    assert {id(bn) for bn in frozen_batchnorms(model)} == expected_bns
    assert len(expected_bns) == 19  # stem + 15 convs + 3 shortcut BNs

    before = snapshot(model)
    train_mode(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    for step in range(3):
        optimizer.zero_grad()
        x = torch.randn(4, 3, 16, 16, generator=generator)
        y = torch.randint(0, 10, (4,), generator=generator)
        nn.functional.cross_entropy(model(x), y).backward()
        if step == 0:
            for name, p in model.named_parameters():
                assert (p.grad is not None) == (layer_of(name, MAP) >= 17), name
        optimizer.step()

    after = model.state_dict()
    for key, value in after.items():
        if layer_of(key, MAP) <= 16:
            assert torch.equal(value, before[key]), key
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert not torch.equal(after[f"layer4.1.bn2.{key}"], before[f"layer4.1.bn2.{key}"]), key
    assert not torch.equal(after["layer4.1.conv2.weight"], before["layer4.1.conv2.weight"])
    assert not torch.equal(after["fc.weight"], before["fc.weight"])


def test_layer_map_follows_the_design_table():
    assert MAP[1] == ("conv1", "bn1")
    assert MAP[2] == ("layer1.0.conv1", "layer1.0.bn1") and MAP[5] == ("layer1.1.conv2", "layer1.1.bn2")
    for number, stage in ((7, 2), (11, 3), (15, 4)):  # the shortcut joins the conv where the residual is added
        assert MAP[number] == (f"layer{stage}.0.conv2", f"layer{stage}.0.bn2", f"layer{stage}.0.downsample")
    assert sum("downsample" in entry for entries in MAP.values() for entry in entries) == 3


def test_reestimate_covers_every_batchnorm_of_the_first_n_layers_including_shortcuts():
    model = make_model(0)
    before = snapshot(model)
    images = torch.randn(8, 3, 16, 16) * 2 + 1
    reestimate_batchnorm(model, 7, MAP, [images[:4], images[4:]])
    after = model.state_dict()
    for key, value in after.items():
        if "running_mean" in key:
            assert torch.equal(value, before[key]) == (layer_of(key, MAP) > 7), key
    assert all(not m.training for m in model.modules())


def test_reestimate_on_a_layernorm_family_changes_nothing():
    torch.manual_seed(0)
    family = get_family("vit_tiny")
    model = build_model(ModelConfig(name="vit_tiny", width=0.125, num_classes=5))
    before = snapshot(model)
    reestimate_batchnorm(model, family.num_layers, family.layer_map, [torch.randn(2, 3, 32, 32)])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_reinitialize_reaches_bare_parameters_of_a_vit():
    torch.manual_seed(0)
    family = get_family("vit_tiny")
    model = build_model(ModelConfig(name="vit_tiny", width=0.125, num_classes=5))
    before = snapshot(model)
    reinitialize(model, 1, family.layer_map)
    after = model.state_dict()
    assert not torch.equal(after["cls_token"], before["cls_token"])
    assert not torch.equal(after["pos_embed"], before["pos_embed"])
    assert not torch.equal(after["blocks.0.attn.qkv.weight"], before["blocks.0.attn.qkv.weight"])
