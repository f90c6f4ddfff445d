from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from synthgap.errors import SynthgapError
from synthgap.models import ModelConfig, build_model, get_family, layer_of


def test_width_one_imagenet_stem_matches_torchvision():
    ours = build_model(ModelConfig(width=1.0, stem="imagenet")).state_dict()
    reference = torchvision.models.resnet18(num_classes=10).state_dict()
    assert list(ours) == list(reference)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in reference.items()}


@pytest.mark.parametrize("name", ["resnet34", "resnet50"])
def test_deeper_resnets_have_torchvisions_names_and_shapes(name):
    with torch.device("meta"):  # names and shapes only: no memory, no initialisation cost
        ours = build_model(ModelConfig(name=name, num_classes=7, stem="imagenet")).state_dict()
        reference = getattr(torchvision.models, name)(num_classes=7).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in reference.items()}
    assert list(ours) == list(reference)


# Seeded ResNet-18 numbers recorded before the model families existed: the refactor must not move them.
PREVIOUS = {
    1.0: {
        "conv1": [0.009225141257047653, 0.05903290957212448, -0.0344076044857502],
        "fc": [0.04403579980134964, 0.027880065143108368, 0.0400124154984951],
        "abs_sum": 229496.45166846842,
        "logits": [-0.511221706867218, -0.42418479919433594, -0.3500083088874817, -0.4133526384830475],
    },
    0.5: {
        "conv1": [-0.04824310913681984, 0.010483198799192905, -0.025124292820692062],
        "fc": [-0.05062289535999298, -0.02842499315738678, -0.012743331491947174],
        "abs_sum": 82658.42730501639,
        "logits": [-0.7133387327194214, 0.006863623857498169, -0.012891676276922226, 0.6875567436218262],
    },
}


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_resnet18_is_unchanged(width):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=width, stem="imagenet")).eval()
    state = model.state_dict()
    expected = PREVIOUS[width]
    torch.testing.assert_close(state["conv1.weight"].flatten()[:3].tolist(), expected["conv1"], rtol=1e-6, atol=0)
    torch.testing.assert_close(state["fc.weight"].flatten()[:3].tolist(), expected["fc"], rtol=1e-6, atol=0)
    abs_sum = sum(v.double().abs().sum().item() for v in state.values())
    assert abs_sum == pytest.approx(expected["abs_sum"], rel=1e-9)
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(logits[0, :4].tolist(), expected["logits"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_narrow_model_forward_shape(stem):
    model = build_model(ModelConfig(width=0.25, num_classes=7, stem=stem)).eval()
    assert model.conv1.out_channels == 16 and model.fc.in_features == 128
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)


def test_cifar_stem_is_3x3_without_maxpool():
    model = build_model(ModelConfig(width=0.25, stem="cifar"))
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.in_channels == 3
    assert isinstance(model.maxpool, nn.Identity)
    imagenet = build_model(ModelConfig(width=0.25, stem="imagenet"))
    assert imagenet.conv1.kernel_size == (7, 7) and isinstance(imagenet.maxpool, nn.MaxPool2d)


def test_resnet50_width_scales_every_stage_and_keeps_the_expansion():
    model = build_model(ModelConfig(name="resnet50", width=0.5, stem="cifar"))
    assert model.conv1.out_channels == 32 and model.conv1.kernel_size == (3, 3)
    assert model.layer1[0].conv1.out_channels == 32 and model.layer1[0].conv3.out_channels == 128
    assert model.layer4[2].conv2.out_channels == 256 and model.fc.in_features == 1024
    assert isinstance(model.layer1[0].downsample, nn.Sequential)  # 32 → 128 channels needs a projection


def test_resnet34_stage_ranges_and_shortcuts():
    layer_map = get_family("resnet34").layer_map
    assert layer_map[2][0] == "layer1.0.conv1" and layer_map[7][0] == "layer1.2.conv2"
    assert layer_map[8][0] == "layer2.0.conv1" and layer_map[15][0] == "layer2.3.conv2"
    assert layer_map[16][0] == "layer3.0.conv1" and layer_map[27][0] == "layer3.5.conv2"
    assert layer_map[28][0] == "layer4.0.conv1" and layer_map[33][0] == "layer4.2.conv2"
    assert layer_map[34] == ("fc",)
    shortcuts = {n for n, entries in layer_map.items() if any("downsample" in e for e in entries)}
    assert shortcuts == {9, 17, 29}


def test_resnet50_numbering_puts_each_shortcut_with_its_blocks_conv3():
    layer_map = get_family("resnet50").layer_map
    assert layer_map[2] == ("layer1.0.conv1", "layer1.0.bn1")
    assert layer_map[4] == ("layer1.0.conv3", "layer1.0.bn3", "layer1.0.downsample")  # 64 → 256 channels
    assert layer_map[49] == ("layer4.2.conv3", "layer4.2.bn3") and layer_map[50] == ("fc",)
    shortcuts = {n for n, entries in layer_map.items() if any("downsample" in e for e in entries)}
    assert shortcuts == {4, 13, 25, 43}
    assert layer_of("layer3.0.downsample.1.running_var", layer_map) == 25


@pytest.mark.parametrize(
    "bad", [{"width": 0.0}, {"width": -0.5}, {"num_classes": 1}, {"stem": "bogus"}, {"name": "vgg"}]
)
def test_bad_config_raises(bad):
    with pytest.raises(SynthgapError):
        build_model(ModelConfig(**bad))


def test_bad_values_set_by_model_copy_are_caught_when_building():
    config = ModelConfig().model_copy(update={"width": 0.0})  # model_copy skips validation
    with pytest.raises(SynthgapError, match="width"):
        build_model(config)
