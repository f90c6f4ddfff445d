"""Vision Transformer students: timm's `VisionTransformer`, built locally (never downloaded), and their layer maps.

Layer 1 is the input embedding (patch projection, class token, position embedding), then one layer per transformer
block, and the last layer is the final norm plus the classifier head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from synthgap.errors import SynthgapError
from synthgap.models.config import ModelConfig
from synthgap.models.layers import LayerMap

if TYPE_CHECKING:  # timm costs ~0.6 s to import: every process that builds a ResNet alone goes without it
    from timm.models.vision_transformer import VisionTransformer


@dataclass(frozen=True)
class ViTLayout:
    """A ViT's size at width 1: embedding dimension, number of blocks, attention heads and MLP ratio."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0

    def scaled_dim(self, width: float) -> int:
        """`embed_dim` × width, rounded to a multiple of the head count (at least one channel per head)."""
        return self.num_heads * max(1, round(self.embed_dim * width / self.num_heads))


VIT_TINY = ViTLayout(embed_dim=192, depth=12, num_heads=3)
VIT_SMALL = ViTLayout(embed_dim=384, depth=12, num_heads=6)


def patch_size_for(config: ModelConfig) -> int:
    """The configured patch size, else 4 px for small images (64 tokens at 32 px) and 16 px (ViT's own) above."""
    if config.patch_size is not None:
        return config.patch_size
    return 4 if config.image_size <= 64 else 16


def build_vit(config: ModelConfig, layout: ViTLayout) -> VisionTransformer:
    patch = patch_size_for(config)
    if config.image_size % patch != 0:
        raise SynthgapError(f"a ViT needs image_size divisible by patch_size, got {config.image_size} and {patch}")
    if config.stem not in ("auto", "imagenet"):
        raise SynthgapError(f"stem {config.stem!r} applies to ResNets only; a ViT's input is set by patch_size")
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=config.image_size,
        patch_size=patch,
        num_classes=config.num_classes,
        embed_dim=layout.scaled_dim(config.width),
        depth=layout.depth,
        num_heads=layout.num_heads,
        mlp_ratio=layout.mlp_ratio,
        class_token=True,
        global_pool="token",
    )


def vit_layer_map(layout: ViTLayout) -> LayerMap:
    """Embedding = layer 1, blocks.0..blocks.{depth-1} = layers 2..depth+1, final norm + head = the last layer.

    `build_vit` makes no register tokens, no pre-norm and no fc_norm (token pooling), so those hold no tensors and
    are not listed; a family that adds them lists them with the embedding and the head respectively.
    """
    table: LayerMap = {1: ("patch_embed", "cls_token", "pos_embed")}
    for block in range(layout.depth):
        table[block + 2] = (f"blocks.{block}",)
    table[layout.depth + 2] = ("norm", "head")
    return table


def _check_cut(model: VisionTransformer, n: int) -> None:
    if not 1 <= n <= len(model.blocks) + 1:
        raise SynthgapError(f"a prefix cut of this ViT needs 1 <= n <= {len(model.blocks) + 1}, got {n}")


class ViTPrefix(nn.Module):
    """Layers 1..n of a timm ViT: the embedded tokens after n - 1 blocks, flattened to B×(tokens·dim)."""

    def __init__(self, model: VisionTransformer, n: int) -> None:
        super().__init__()
        _check_cut(model, n)
        self.model = model
        self.n = n
        self.shapes: list[torch.Size] = []  # the per-image shape of the packed tokens (T×D), set by every forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        # forward_features up to the cut; _pos_embed is timm's step that adds the class token and positions
        x = m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))
        for block in m.blocks[: self.n - 1]:
            x = block(x)
        self.shapes[:] = [x.shape[1:]]  # in place: a stitch built from this prefix reads it
        return x.flatten(1)  # a view: one part needs no concatenation (`split.pack` copies)


class ViTSuffix(nn.Module):
    """Layers n+1..last of the same ViT, fed with the flat tokens of a `ViTPrefix`."""

    def __init__(self, model: VisionTransformer, n: int) -> None:
        super().__init__()
        _check_cut(model, n)
        self.model = model
        self.n = n

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = packed.reshape(packed.shape[0], -1, m.embed_dim)
        for block in m.blocks[self.n - 1 :]:
            x = block(x)
        return m.forward_head(m.norm(x))


def split_vit(model: nn.Module, n: int) -> tuple[ViTPrefix, ViTSuffix]:
    """The family `split` of every ViT: prefix = layers 1..n, suffix = the rest, sharing `model`'s parameters."""
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise SynthgapError(f"a ViT cut needs a timm VisionTransformer, got {type(model).__name__}")
    return ViTPrefix(model, n), ViTSuffix(model, n)
