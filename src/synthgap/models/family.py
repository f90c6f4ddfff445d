"""Model families: everything about one architecture (builder, layer numbering, norm type, prefix cut) in one place.

Adding a family is one builder function and one ``FAMILIES.add(name, ModelFamily(...))`` call below; nothing outside
`models/` writes a layer count (use ``get_family(name).num_layers``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from synthgap.models.config import ModelConfig
from synthgap.models.layers import LayerMap
from synthgap.models.resnet import RESNET18, RESNET34, RESNET50, build_resnet, resnet_layer_map
from synthgap.models.split import split_resnet
from synthgap.models.vit import VIT_SMALL, VIT_TINY, build_vit, split_vit, vit_layer_map
from synthgap.registry import Registry

NORMS = ("batchnorm", "layernorm")

Split = Callable[[nn.Module, int], tuple[nn.Module, nn.Module]]


@dataclass(frozen=True, eq=False)  # one object per registered name: identity equality, hashable despite the dict
class ModelFamily:
    """One architecture: how to build it, how its weighted layers are numbered, and how to cut it.

    `norm` says what frozen-BN "reestimate" and AdaBN can act on: "batchnorm" (running statistics) or "layernorm"
    (none). `split(model, n)` for 1 <= n <= num_layers - 1 returns (prefix, suffix) modules sharing the model's
    parameters, with ``suffix(prefix(x)) == model(x)`` in eval mode and ``prefix(x)`` a flat B×D tensor whose
    parts' per-image shapes ``prefix.shapes`` records at every forward (what a stitch maps).
    """

    name: str
    build: Callable[[ModelConfig], nn.Module]
    layer_map: LayerMap
    norm: str
    split: Split | None = None  # None: no prefix cut (the prefix is recomputed every step)
    description: str = ""
    # its suffix convolves C×H×W maps (a ResNet's), which a cached-feature stage 2 runs in the recipe's memory format;
    # a ViT's works on tokens
    suffix_maps: bool = False

    def __post_init__(self) -> None:
        if sorted(self.layer_map) != list(range(1, len(self.layer_map) + 1)):
            raise ValueError(f"family {self.name!r}: layer numbers must be 1..N, got {sorted(self.layer_map)}")
        if self.norm not in NORMS:
            raise ValueError(f"family {self.name!r}: norm must be one of {NORMS}, got {self.norm!r}")

    @property
    def num_layers(self) -> int:
        return len(self.layer_map)

    def has_cut(self) -> bool:
        return self.split is not None


FAMILIES: Registry[ModelFamily] = Registry("model family")


def get_family(name: str) -> ModelFamily:
    return FAMILIES.get(name)


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised model of `config.name`'s family (seed the global RNG first for a reproducible one)."""
    config.check()  # again: model_copy(update=...) skips the validator
    return get_family(config.name).build(config)


def _add(family: ModelFamily) -> None:
    FAMILIES.add(family.name, family)  # registered under its own name, so the two cannot disagree


_add(
    ModelFamily(
        name="resnet18",
        build=partial(build_resnet, layout=RESNET18),
        layer_map=resnet_layer_map(RESNET18),
        norm="batchnorm",
        split=split_resnet,
        suffix_maps=True,
        description="torchvision ResNet-18: BasicBlock (2, 2, 2, 2); stem + 16 convs + fc",
    )
)
_add(
    ModelFamily(
        name="resnet34",
        build=partial(build_resnet, layout=RESNET34),
        layer_map=resnet_layer_map(RESNET34),
        norm="batchnorm",
        split=split_resnet,
        suffix_maps=True,
        description="torchvision ResNet-34: BasicBlock (3, 4, 6, 3); stem + 32 convs + fc",
    )
)
_add(
    ModelFamily(
        name="resnet50",
        build=partial(build_resnet, layout=RESNET50),
        layer_map=resnet_layer_map(RESNET50),
        norm="batchnorm",
        split=split_resnet,
        suffix_maps=True,
        description="torchvision ResNet-50: Bottleneck (3, 4, 6, 3); stem + 48 convs + fc",
    )
)
_add(
    ModelFamily(
        name="vit_tiny",
        build=partial(build_vit, layout=VIT_TINY),
        layer_map=vit_layer_map(VIT_TINY),
        norm="layernorm",
        split=split_vit,
        description="timm ViT-Tiny: embed 192, depth 12, 3 heads; embedding + 12 blocks + norm/head",
    )
)
_add(
    ModelFamily(
        name="vit_small",
        build=partial(build_vit, layout=VIT_SMALL),
        layer_map=vit_layer_map(VIT_SMALL),
        norm="layernorm",
        split=split_vit,
        description="timm ViT-Small: embed 384, depth 12, 6 heads; embedding + 12 blocks + norm/head",
    )
)
