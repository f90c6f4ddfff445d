"""Cut a ResNet between layer n and n+1 so a frozen prefix can be computed once and only the suffix trained.

A cut inside a residual block (after its first conv, or a Bottleneck's second) must carry two tensors across: the
block input (for the shortcut) and the current activation. Both are packed into one flat feature vector per image, so
cached features are a plain N×D tensor that any batching code can shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from synthgap.errors import SynthgapError

Block = BasicBlock | Bottleneck


def pack(parts: list[torch.Tensor], shapes: list[torch.Size]) -> torch.Tensor:
    """Flatten and concatenate `parts` into B×D; their per-image shapes are written into `shapes` in place."""
    # In place, not rebound: the matching suffix holds this same list and learns the shapes from it.
    shapes[:] = [p.shape[1:] for p in parts]
    return torch.cat([p.flatten(1) for p in parts], dim=1)


def unpack(packed: torch.Tensor, shapes: list[torch.Size]) -> list[torch.Tensor]:
    if not shapes:
        raise SynthgapError("the suffix does not know the packed shapes yet: run its prefix on one batch first")
    sizes = [s.numel() for s in shapes]
    return [p.reshape(-1, *s) for p, s in zip(packed.split(sizes, dim=1), shapes, strict=True)]


def blocks_of(model: ResNet) -> list[Block]:
    return [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]


def convs_in(block: Block) -> int:
    return 3 if isinstance(block, Bottleneck) else 2


@dataclass(frozen=True)
class CutPoint:
    """Where layer n ends: after the stem (block None), or after `convs` convs of block `block` of the stages."""

    block: int | None  # index into the flat list of residual blocks; None: cut after the stem (n = 1)
    convs: int = 0  # convs of that block inside the prefix; fewer than the block has: a cut inside the block

    def inside(self, model: ResNet) -> bool:
        return self.block is not None and self.convs < convs_in(blocks_of(model)[self.block])


def cut_point(model: ResNet, n: int) -> CutPoint:
    """Layer 1 is the stem, then one layer per conv of every block (`resnet_layer_map`), the last layer is fc."""
    blocks = blocks_of(model)
    per_block = convs_in(blocks[0])
    last = 1 + per_block * len(blocks)
    if not 1 <= n <= last:
        raise SynthgapError(f"a prefix cut of this ResNet needs 1 <= n <= {last}, got {n}")
    if n == 1:
        return CutPoint(block=None)
    return CutPoint(block=(n - 2) // per_block, convs=(n - 2) % per_block + 1)


def _inner_conv(block: Block, x: torch.Tensor, conv: int) -> torch.Tensor:
    """conv → bn → relu for a conv before the block's last (the last one's output meets the shortcut first)."""
    return block.relu(getattr(block, f"bn{conv}")(getattr(block, f"conv{conv}")(x)))


def _block_head(block: Block, x: torch.Tensor, convs: int) -> torch.Tensor:
    for conv in range(1, convs + 1):
        x = _inner_conv(block, x, conv)
    return x


def _block_tail(block: Block, block_input: torch.Tensor, head: torch.Tensor, convs: int) -> torch.Tensor:
    last = convs_in(block)
    for conv in range(convs + 1, last):
        head = _inner_conv(block, head, conv)
    out = getattr(block, f"bn{last}")(getattr(block, f"conv{last}")(head))
    shortcut = block.downsample(block_input) if block.downsample is not None else block_input
    return block.relu(out + shortcut)


class ResNetPrefix(nn.Module):
    """Layers 1..n of a torchvision ResNet; returns packed features of shape B×D."""

    def __init__(self, model: ResNet, n: int) -> None:
        super().__init__()
        self.model = model
        self.point = cut_point(model, n)
        self.shapes: list[torch.Size] = []  # per-image shapes of the packed tensors, set by every forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        parts = [x]
        if self.point.block is not None:
            blocks = blocks_of(m)
            for block in blocks[: self.point.block]:
                x = block(x)
            last = blocks[self.point.block]
            parts = [x, _block_head(last, x, self.point.convs)] if self.point.inside(m) else [last(x)]
        return pack(parts, self.shapes)


class ResNetSuffix(nn.Module):
    """Layers n+1..last of the same ResNet, fed with the packed features of a `ResNetPrefix`.

    `shapes` is the prefix's own list (``prefix.shapes``): filled by the prefix's forward, read here.
    """

    def __init__(self, model: ResNet, n: int, shapes: list[torch.Size]) -> None:
        super().__init__()
        self.model = model
        self.point = cut_point(model, n)
        self.shapes = shapes

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        blocks = blocks_of(self.model)
        parts = unpack(packed, self.shapes)
        if _stored_channels_last(blocks[-1].conv2.weight):  # as the whole model would see them: 6-30 % faster on CPU
            parts = [p.contiguous(memory_format=torch.channels_last) if p.dim() == 4 else p for p in parts]
        if self.point.block is None:
            x, start = parts[0], 0
        elif self.point.inside(self.model):
            x = _block_tail(blocks[self.point.block], parts[0], parts[1], self.point.convs)
            start = self.point.block + 1
        else:
            x, start = parts[0], self.point.block + 1
        for block in blocks[start:]:
            x = block(x)
        return self.model.fc(torch.flatten(self.model.avgpool(x), 1))


def _stored_channels_last(weight: torch.Tensor) -> bool:
    """Whether a 4-D weight is held channels-last (`Module.to(memory_format=...)`), not merely compatible with it
    (a 1×1 kernel is both)."""
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def split_resnet(model: nn.Module, n: int) -> tuple[ResNetPrefix, ResNetSuffix]:
    """The family `split` of every ResNet: prefix = layers 1..n, suffix = the rest, sharing `model`'s parameters."""
    if not isinstance(model, ResNet):
        raise SynthgapError(f"a ResNet cut needs a torchvision ResNet, got {type(model).__name__}")
    prefix = ResNetPrefix(model, n)
    return prefix, ResNetSuffix(model, n, prefix.shapes)
