"""The ResNet-18 student: torchvision's model, optionally narrower and with a CIFAR stem.

Module names match torchvision exactly at every width, so one layer map serves all variants and width-1 ImageNet-stem
models compute exactly ``torchvision.models.resnet18`` (same module names, parameters and function; eligible 3×3
convolutions get a faster class for 1×1 inputs, see `CentreTapConv2d`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock, conv1x1

from synthgap.errors import SynthgapError
from synthgap.registry import Registry

MODELS: Registry = Registry("model")


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "resnet18"
    num_classes: int = 10
    width: float = 1.0  # multiplies every stage's channel count (64·w, 128·w, 256·w, 512·w)
    stem: str = "imagenet"  # "imagenet": 7×7/2 conv + max-pool (unmodified); "cifar": 3×3/1 conv, no pool


def build_model(config: ModelConfig) -> nn.Module:
    if config.num_classes < 2:
        raise SynthgapError(f"a classifier needs at least 2 classes, got {config.num_classes}")
    if config.width <= 0:
        raise SynthgapError(f"width multiplier must be positive, got {config.width}")
    if config.stem not in ("imagenet", "cifar"):
        raise SynthgapError(f"unknown stem {config.stem!r}; choose imagenet or cifar")
    return MODELS.get(config.name)(config)


@MODELS.register("resnet18")
def build_resnet18(config: ModelConfig) -> nn.Module:
    model = resnet18(weights=None, num_classes=config.num_classes)
    if config.width != 1.0:
        _rescale_resnet18(model, config.width, config.num_classes)
    if config.stem == "cifar":
        # Small images lose most of their resolution to the 7×7/2 conv and max-pool; this is the usual CIFAR stem.
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    init_weights(model)
    use_centre_tap_shortcut(model)
    return model


class CentreTapConv2d(nn.Conv2d):
    """A 3×3 convolution (stride 1, zero padding 1) that on a 1×1 input runs as a product with its centre tap.

    On a 1×1 map the other eight taps only ever meet the zero padding, so outputs and gradients are the same (the
    off-centre weights get zero gradient either way). The CPU convolution kernels do not exploit this: at 32 px the
    last stage of ResNet-18 runs on 1×1 maps, and its convs made up about half of a full-width training step.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.shape[-2:] == (1, 1) and x.device.type == "cpu":  # GPUs' kernels do not need it
            return F.linear(x.flatten(1), self.weight[:, :, 1, 1], self.bias)[:, :, None, None]
        return super().forward(x)


def use_centre_tap_shortcut(model: nn.Module) -> None:
    """Give every plain 3×3, stride-1, padding-1 convolution of `model` the 1×1-input shortcut, in place.

    Only the class changes (no parameter or buffer does), so state dicts, layer maps and checkpoints are untouched.
    """
    for module in model.modules():
        if (type(module) is nn.Conv2d and module.kernel_size == (3, 3) and module.stride == (1, 1)
                and module.padding == (1, 1) and module.dilation == (1, 1) and module.groups == 1
                and module.padding_mode == "zeros"):  # fmt: skip
            module.__class__ = CentreTapConv2d


def _rescale_resnet18(model: nn.Module, width: float, num_classes: int) -> None:
    """Rebuild stem, stages and head with scaled channel counts; module names and structure stay torchvision's."""
    channels = [max(4, round(c * width)) for c in (64, 128, 256, 512)]
    model.conv1 = nn.Conv2d(3, channels[0], kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(channels[0])
    in_ch = channels[0]
    for stage, (out_ch, stride) in enumerate(zip(channels, (1, 2, 2, 2), strict=True), start=1):
        downsample = None
        if stride != 1 or in_ch != out_ch:
            downsample = nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        blocks = [BasicBlock(in_ch, out_ch, stride, downsample), BasicBlock(out_ch, out_ch)]
        setattr(model, f"layer{stage}", nn.Sequential(*blocks))
        in_ch = out_ch
    model.fc = nn.Linear(in_ch, num_classes)


def init_weights(module: nn.Module) -> None:
    """torchvision's ResNet initialisation, applicable to any sub-module (used again to re-initialise layers)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            m.reset_parameters()
