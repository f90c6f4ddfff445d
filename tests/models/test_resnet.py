from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from synthgap.errors import SynthgapError
from synthgap.models import ModelConfig, build_model


def test_width_one_imagenet_stem_matches_torchvision():
    ours = build_model(ModelConfig(width=1.0)).state_dict()
    reference = torchvision.models.resnet18(num_classes=10).state_dict()
    assert list(ours) == list(reference)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in reference.items()}


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
    imagenet = build_model(ModelConfig(width=0.25))
    assert imagenet.conv1.kernel_size == (7, 7) and isinstance(imagenet.maxpool, nn.MaxPool2d)


@pytest.mark.parametrize(
    "bad", [{"width": 0.0}, {"width": -0.5}, {"num_classes": 1}, {"stem": "bogus"}, {"name": "vgg"}]
)
def test_bad_config_raises(bad):
    with pytest.raises(SynthgapError):
        build_model(ModelConfig(**bad))
