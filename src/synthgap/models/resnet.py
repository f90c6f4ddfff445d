"""ResNet students: torchvision's models, optionally narrower and with a CIFAR stem, and their layer maps.

Module names match torchvision exactly at every width, so one layer map serves all variants and width-1 ImageNet-stem
models compute exactly ``torchvision.models.resnet18/34/50`` (same module names, parameters and function; eligible
3×3 convolutions get a faster class for 1×1 inputs, see `CentreTapConv2d`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet, conv1x1

from synthgap.models.config import ModelConfig
from synthgap.models.layers import LayerMap, init_weights

STAGE_PLANES = (64, 128, 256, 512)  # torchvision's per-stage base widths (a Bottleneck outputs 4× as many)
STAGE_STRIDES = (1, 2, 2, 2)


@dataclass(frozen=True)
class ResNetLayout:
    """A torchvision ResNet: its block type and how many blocks each of the four stages holds."""

    block: type[BasicBlock] | type[Bottleneck]
    blocks: tuple[int, int, int, int]

    @property
    def convs_per_block(self) -> int:
        return 3 if self.block is Bottleneck else 2

    def has_downsample(self, stage: int, block: int) -> bool:
        """Whether a block gets a shortcut projection: the first block of a stage that strides or widens."""
        return block == 0 and (STAGE_STRIDES[stage - 1] != 1 or self.block.expansion != 1)


RESNET18 = ResNetLayout(BasicBlock, (2, 2, 2, 2))
RESNET34 = ResNetLayout(BasicBlock, (3, 4, 6, 3))
RESNET50 = ResNetLayout(Bottleneck, (3, 4, 6, 3))


def build_resnet(config: ModelConfig, layout: ResNetLayout) -> ResNet:
    """torchvision's ResNet (what ``torchvision.models.resnet18(weights=None)`` builds), then width and stem."""
    model = ResNet(layout.block, list(layout.blocks), num_classes=config.num_classes)
    if config.width != 1.0:
        _rescale(model, layout, config.width, config.num_classes)
    if config.resolved_stem == "cifar":
        # Small images lose most of their resolution to the 7×7/2 conv and max-pool; this is the usual CIFAR stem.
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    init_weights(model)
    use_centre_tap_shortcut(model)
    return model


def resnet_layer_map(layout: ResNetLayout) -> LayerMap:
    """Stem = layer 1; then one layer per conv of every block in order; fc last.

    A block's shortcut projection (``downsample``) joins where the residual is added: its last conv's layer.
    """
    table: LayerMap = {1: ("conv1", "bn1")}
    number = 2
    for stage, count in enumerate(layout.blocks, start=1):
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            for conv in range(1, layout.convs_per_block + 1):
                entries = (f"{prefix}.conv{conv}", f"{prefix}.bn{conv}")
                if conv == layout.convs_per_block and layout.has_downsample(stage, block):
                    entries += (f"{prefix}.downsample",)
                table[number] = entries
                number += 1
    table[number] = ("fc",)
    return table


def _rescale(model: ResNet, layout: ResNetLayout, width: float, num_classes: int) -> None:
    """Rebuild stem, stages and head with scaled channel counts; module names and structure stay torchvision's.

    Modules are created in torchvision's order (shortcut before its block), which fixes the random stream and so
    keeps seeded models reproducible.
    """
    planes = [max(4, round(c * width)) for c in STAGE_PLANES]
    model.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(planes[0])
    in_ch = planes[0]
    for stage, (stage_planes, count, stride) in enumerate(zip(planes, layout.blocks, STAGE_STRIDES, strict=True), 1):
        out_ch = stage_planes * layout.block.expansion
        downsample = None
        if layout.has_downsample(stage, 0):
            downsample = nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        blocks = [layout.block(in_ch, stage_planes, stride, downsample)]
        blocks += [layout.block(out_ch, stage_planes) for _ in range(count - 1)]
        setattr(model, f"layer{stage}", nn.Sequential(*blocks))
        in_ch = out_ch
    model.fc = nn.Linear(in_ch, num_classes)


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


def _has_centre_tap_shortcut(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.kernel_size == (3, 3)
        and module.stride == (1, 1)
        and module.padding == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
    )


def use_centre_tap_shortcut(model: nn.Module) -> None:
    """Give every plain 3×3, stride-1, padding-1 convolution of `model` the 1×1-input shortcut, in place.

    Only the class changes (no parameter or buffer does), so state dicts, layer maps and checkpoints are untouched.
    """
    for module in model.modules():
        if _has_centre_tap_shortcut(module):
            module.__class__ = CentreTapConv2d
