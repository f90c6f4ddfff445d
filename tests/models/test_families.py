"""Contract tests run for every registered model family: layer map coverage, transfer, freeze, prefix cut."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

from synthgap.errors import SynthgapError
from synthgap.models import (
    FAMILIES,
    ModelConfig,
    build_model,
    freeze,
    frozen_batchnorms,
    get_family,
    layer_of,
    train_mode,
    trainable_layers,
    transfer,
)
from synthgap.models.layers import state_keys

KNOWN_LAYER_COUNTS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "vit_tiny": 14, "vit_small": 14}
IMAGE = 32


def tiny_config(name: str) -> ModelConfig:
    width = 0.125 if name == "resnet50" else 0.25  # a 50-layer net at 1/8 width still has 32-channel stages
    return ModelConfig(name=name, width=width, num_classes=5, image_size=IMAGE)


def make_model(name: str, seed: int) -> nn.Module:
    """A tiny model whose parameters and BatchNorm statistics all differ from a fresh model's (a private copy)."""
    return copy.deepcopy(_perturbed_model(name, seed))


@functools.cache  # building the deeper families dominates these tests' time
def _perturbed_model(name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(tiny_config(name))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        model.train()
        model(torch.randn(4, 3, IMAGE, IMAGE))  # updates every running_mean / running_var / num_batches_tracked
    return model


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def transfer_counts(name: str) -> list[int]:
    last = get_family(name).num_layers
    return sorted({0, 1, 2, last // 2, last - 1, last})


every_family = pytest.mark.parametrize("name", FAMILIES.names())
TRANSFER_CASES = [(name, n) for name in FAMILIES.names() for n in transfer_counts(name)]


def test_known_families_have_their_layer_counts():
    assert set(KNOWN_LAYER_COUNTS) <= set(FAMILIES.names())
    for family_name, count in KNOWN_LAYER_COUNTS.items():
        family = get_family(family_name)
        assert family.num_layers == len(family.layer_map) == count


@every_family
def test_every_tensor_is_in_exactly_one_layer(name):
    family = get_family(name)
    model = make_model(name, 0)
    assert sorted(family.layer_map) == list(range(1, family.num_layers + 1))
    names = set(model.state_dict()) | {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    layers = {key: layer_of(key, family.layer_map) for key in names}  # raises unless exactly one owner
    assert set(layers.values()) == set(range(1, family.num_layers + 1))  # no empty layer


@every_family
def test_every_layer_map_entry_names_tensors(name):
    model = make_model(name, 0)
    keys = list(model.state_dict())
    for number, entries in get_family(name).layer_map.items():
        for entry in entries:
            assert any(k == entry or k.startswith(entry + ".") for k in keys), (number, entry)


@every_family
def test_family_norm_matches_the_model(name):
    family = get_family(name)
    model = make_model(name, 0)
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert has_batchnorm == (family.norm == "batchnorm")


@pytest.mark.parametrize(("name", "n"), TRANSFER_CASES)
def test_transfer_copies_exactly_the_first_n_layers(name, n):
    layer_map = get_family(name).layer_map
    target, source = make_model(name, 0), make_model(name, 1)
    before, source_state = snapshot(target), snapshot(source)
    transfer(target, source, n, layer_map)
    for key, value in target.state_dict().items():
        copied = layer_of(key, layer_map) <= n
        assert torch.equal(value, source_state[key] if copied else before[key]), key
        if copied and not key.endswith("num_batches_tracked"):
            assert not torch.equal(before[key], source_state[key]), key  # the copy is observable


@every_family
def test_transfer_out_of_range_raises(name):
    family = get_family(name)
    model = make_model(name, 0)
    with pytest.raises(SynthgapError):
        transfer(model, model, family.num_layers + 1, family.layer_map)


@every_family
def test_freeze_and_train_mode_keep_frozen_layers_fixed(name):
    family = get_family(name)
    n = family.num_layers - 2
    model = make_model(name, 0)
    freeze(model, n, family.layer_map)
    for key, p in model.named_parameters():
        assert p.requires_grad == (layer_of(key, family.layer_map) > n), key
    assert trainable_layers(model, family.layer_map) == [n + 1, n + 2]

    before = snapshot(model)
    train_mode(model)
    assert all(not bn.training for bn in frozen_batchnorms(model))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        optimizer.zero_grad()
        x = torch.randn(4, 3, IMAGE, IMAGE, generator=generator)
        y = torch.randint(0, 5, (4,), generator=generator)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    after = model.state_dict()
    for key in state_keys(model, range(1, n + 1), family.layer_map):  # weights and BatchNorm statistics
        assert torch.equal(after[key], before[key]), key
    for key, p in model.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, before[key]), key


@every_family
def test_prefix_then_suffix_equals_the_whole_model_at_every_cut(name):
    family = get_family(name)
    if not family.has_cut():
        pytest.skip(f"{name} has no prefix cut")
    torch.manual_seed(0)
    model = make_model(name, 0).eval()
    x = torch.randn(3, 3, IMAGE, IMAGE)
    with torch.no_grad():
        expected = model(x)
        for n in range(1, family.num_layers):
            prefix, suffix = family.split(model, n)
            features = prefix(x)
            assert features.ndim == 2 and features.shape[0] == 3 and features.dtype == torch.float32
            torch.testing.assert_close(suffix(features), expected, rtol=1e-5, atol=1e-5, msg=f"cut after {n}")


@every_family
def test_prefix_and_suffix_share_the_model_parameters(name):
    family = get_family(name)
    if not family.has_cut():
        pytest.skip(f"{name} has no prefix cut")
    model = make_model(name, 0)
    prefix, suffix = family.split(model, 2)
    model_ids = {id(p) for p in model.parameters()}
    assert {id(p) for p in prefix.parameters()} <= model_ids
    assert {id(p) for p in suffix.parameters()} <= model_ids


@every_family
def test_cut_outside_the_layers_raises(name):
    family = get_family(name)
    if not family.has_cut():
        pytest.skip(f"{name} has no prefix cut")
    model = make_model(name, 0)
    for n in (0, family.num_layers):  # no prefix, or no suffix: not a cut
        with pytest.raises(SynthgapError):
            family.split(model, n)
