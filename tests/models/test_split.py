import pytest
import torch

from synthgap.errors import SynthgapError
from synthgap.models import ModelConfig, build_model, get_family
from synthgap.models.split import CutPoint, ResNetPrefix, ResNetSuffix, cut_point


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_prefix_then_suffix_equals_the_whole_model_at_every_cut(stem):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.125, stem=stem)).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        for n in range(1, 18):
            prefix = ResNetPrefix(model, n)
            features = prefix(x)
            assert features.ndim == 2 and features.shape[0] == 3
            torch.testing.assert_close(ResNetSuffix(model, n, prefix.shapes)(features), expected)


def test_cut_points_follow_the_layer_map():
    model = build_model(ModelConfig(width=0.125))
    assert cut_point(model, 1).block is None
    assert cut_point(model, 2) == CutPoint(block=0, convs=1) and cut_point(model, 2).inside(model)  # layer1.0.conv1
    assert cut_point(model, 3) == CutPoint(block=0, convs=2) and not cut_point(model, 3).inside(model)  # + shortcut
    assert cut_point(model, 16) == CutPoint(block=7, convs=1)  # after layer4.1.conv1
    assert cut_point(model, 17) == CutPoint(block=7, convs=2)
    with pytest.raises(SynthgapError):
        cut_point(model, 18)


def test_bottleneck_cuts_carry_the_block_input_inside_a_block():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="resnet50", width=0.125, stem="imagenet")).eval()
    assert cut_point(model, 3) == CutPoint(block=0, convs=2) and cut_point(model, 3).inside(model)
    assert cut_point(model, 4) == CutPoint(block=0, convs=3) and not cut_point(model, 4).inside(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        after_conv2, after_block = (ResNetPrefix(model, n) for n in (3, 4))
        after_conv2(x)
        after_block(x)
    stem_out = torch.Size([8, 8, 8])  # 8 channels at 1/8 width, 32 px → 8 px after the stem and max-pool
    assert after_conv2.shapes == [stem_out, torch.Size([8, 8, 8])]
    assert after_block.shapes == [torch.Size([32, 8, 8])]


def test_the_family_split_learns_the_shapes_from_the_prefix():
    model = build_model(ModelConfig(width=0.125)).eval()
    prefix, suffix = get_family("resnet18").split(model, 4)
    with pytest.raises(SynthgapError, match="prefix"):
        suffix(torch.zeros(1, 10))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(suffix(prefix(x)), model(x))


def test_only_resnets_support_the_resnet_cut():
    with pytest.raises(SynthgapError):
        get_family("resnet18").split(torch.nn.Linear(2, 2), 1)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_a_channels_last_suffix_convolves_channels_last_maps_to_the_same_result(name):
    """Packed features unpack as contiguous maps; a suffix whose weights are held channels-last (as `fit` holds them
    when the recipe asks) converts them first, so its convolutions run in the format the whole model trains in."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, width=0.125, stem="cifar")).eval()
    x = torch.randn(3, 3, 16, 16)
    n = 4 if name == "resnet18" else 8  # inside the first stage: maps of full size
    prefix = ResNetPrefix(model, n)
    seen: list[bool] = []  # the memory format of the first map each suffix forward convolves

    def first_conv(_, args):
        if recording:
            seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
            recording.clear()

    for conv in (m for m in model.modules() if isinstance(m, torch.nn.Conv2d)):
        conv.register_forward_pre_hook(first_conv)
    recording: list[bool] = []
    with torch.no_grad():
        features = prefix(x)
        recording.append(True)
        contiguous = ResNetSuffix(model, n, prefix.shapes)(features)
        model.to(memory_format=torch.channels_last)
        recording.append(True)
        last = ResNetSuffix(model, n, prefix.shapes)(features)
    assert seen == [False, True]
    torch.testing.assert_close(last, contiguous, rtol=1e-4, atol=1e-5)
