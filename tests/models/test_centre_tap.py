"""The 1×1-input shortcut of 3×3 convolutions: same outputs and gradients as the plain convolution."""

import copy

import pytest
import torch
from torch import nn

from synthgap.models import CentreTapConv2d, ModelConfig, build_model
from synthgap.models.resnet import use_centre_tap_shortcut


@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize("bias", [False, True])
def test_same_output_and_gradients_as_the_plain_convolution(size, bias):
    torch.manual_seed(0)
    plain = nn.Conv2d(6, 5, 3, padding=1, bias=bias)
    fast = copy.deepcopy(plain)
    use_centre_tap_shortcut(fast)
    assert type(fast) is CentreTapConv2d
    x = torch.randn(4, 6, size, size, requires_grad=True)
    x_fast = x.detach().clone().requires_grad_()
    out, out_fast = plain(x), fast(x_fast)
    torch.testing.assert_close(out_fast, out, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_fast.backward(grad)
    torch.testing.assert_close(x_fast.grad, x.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-6)
    if size == 1:
        assert fast.weight.grad[:, :, [0, 0, 2, 2], [0, 2, 0, 2]].abs().max() == 0  # only the centre learns


def test_only_eligible_convolutions_switch_and_state_dict_is_unchanged():
    model = build_model(ModelConfig(stem="imagenet"))
    switched = {name for name, m in model.named_modules() if type(m) is CentreTapConv2d}
    assert "layer4.1.conv2" in switched and "layer1.0.conv1" in switched
    assert "conv1" not in switched and "layer2.0.conv1" not in switched  # 7×7 stem, stride 2
    assert "layer2.0.downsample.0" not in switched  # 1×1 conv
    from torchvision.models import resnet18

    assert list(model.state_dict()) == list(resnet18(num_classes=10).state_dict())


def test_full_model_at_32px_matches_plain_convolutions():
    torch.manual_seed(0)
    fast = build_model(ModelConfig(width=0.25)).eval()
    plain = copy.deepcopy(fast)
    for module in plain.modules():
        if type(module) is CentreTapConv2d:
            module.__class__ = nn.Conv2d
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_a_training_step_matches_plain_convolutions(dtype):
    torch.manual_seed(0)
    fast = build_model(ModelConfig(width=0.125)).to(memory_format=torch.channels_last)
    plain = copy.deepcopy(fast)
    for module in plain.modules():
        if type(module) is CentreTapConv2d:
            module.__class__ = nn.Conv2d
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([0, 1, 2, 3])
    for model in (fast, plain):
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(x).float(), labels)
        loss.backward()
    for (name, a), (_, b) in zip(fast.named_parameters(), plain.named_parameters(), strict=True):
        if dtype is None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)
        else:  # bf16 rounds in other places along the two paths: the gradients agree in direction and size
            cosine = nn.functional.cosine_similarity(a.grad.flatten(), b.grad.flatten(), dim=0)
            assert cosine > 0.999 and torch.isclose(a.grad.norm(), b.grad.norm(), rtol=0.02), name
