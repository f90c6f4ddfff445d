"""Cut a ResNet between layer n and n+1 so a frozen prefix can be computed once and only the suffix trained.

A cut inside a residual block (after its first conv) must carry two tensors across: the block input (for the shortcut)
and the first conv's activation. Both are packed into one flat feature vector per image, so cached features are
a plain N×D tensor that any batching code can shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet


@dataclass(frozen=True)
class CutPoint:
    """Where layer n ends: after the stem (block None), or inside/after block `block` of the stages."""

    block: int | None  # index into the flat list of residual blocks; None: cut after the stem (n = 1)
    mid_block: bool  # True: after the block's conv1/bn1/relu (needs the block input too)


def cut_point(n: int) -> CutPoint:
    """Layer 1 is the stem, layers 2..17 are two convs per residual block, layer 18 is fc."""
    if not 1 <= n <= 17:
        raise ValueError(f"a prefix cut needs 1 <= n <= 17, got {n}")
    if n == 1:
        return CutPoint(block=None, mid_block=False)
    return CutPoint(block=(n - 2) // 2, mid_block=(n - 2) % 2 == 0)


def _blocks(model: ResNet) -> list[BasicBlock]:
    return [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]


def _block_head(block: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    return block.relu(block.bn1(block.conv1(x)))


def _block_tail(block: BasicBlock, block_input: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    out = block.bn2(block.conv2(head))
    shortcut = block.downsample(block_input) if block.downsample is not None else block_input
    return block.relu(out + shortcut)


class ResNetPrefix(nn.Module):
    """Layers 1..n of a torchvision ResNet with basic blocks; returns packed features of shape B×D."""

    def __init__(self, model: ResNet, n: int) -> None:
        super().__init__()
        self.model = model
        self.point = cut_point(n)
        self.shapes: list[torch.Size] = []  # per-image shapes of the packed tensors, set by the first forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        parts = [x]
        if self.point.block is not None:
            blocks = _blocks(m)
            for block in blocks[: self.point.block]:
                x = block(x)
            last = blocks[self.point.block]
            parts = [x, _block_head(last, x)] if self.point.mid_block else [last(x)]
        self.shapes = [p.shape[1:] for p in parts]
        return torch.cat([p.flatten(1) for p in parts], dim=1)


class ResNetSuffix(nn.Module):
    """Layers n+1..18 of the same ResNet, fed with the packed features of a `ResNetPrefix`."""

    def __init__(self, model: ResNet, n: int, shapes: list[torch.Size]) -> None:
        super().__init__()
        self.model = model
        self.point = cut_point(n)
        self.shapes = shapes

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        sizes = [s.numel() for s in self.shapes]
        parts = [p.reshape(-1, *s) for p, s in zip(packed.split(sizes, dim=1), self.shapes, strict=True)]
        blocks = _blocks(self.model)
        if self.point.block is None:
            x, start = parts[0], 0
        elif self.point.mid_block:
            x, start = _block_tail(blocks[self.point.block], parts[0], parts[1]), self.point.block + 1
        else:
            x, start = parts[0], self.point.block + 1
        for block in blocks[start:]:
            x = block(x)
        return self.model.fc(torch.flatten(self.model.avgpool(x), 1))


def supports_prefix_cut(model: nn.Module) -> bool:
    return isinstance(model, ResNet) and all(isinstance(b, BasicBlock) for b in _blocks(model))
