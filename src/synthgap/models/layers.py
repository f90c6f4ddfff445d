"""Operations over numbered layers: transfer, freeze, re-initialise and re-estimate BatchNorm statistics.

A layer map is data: layer number (1-based) → the names that make up that layer. A name is a sub-module
(``layer2.0.downsample``, whose tensors all belong to the layer) or a parameter that is not inside any listed module
(a ViT's ``cls_token``). Every model family owns its map (`synthgap.models.family`); everything here is written once
against the map and knows no architecture.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from synthgap.errors import SynthgapError

LayerMap = dict[int, tuple[str, ...]]  # layer number (1-based) → module or parameter names


def num_layers(layer_map: LayerMap) -> int:
    return len(layer_map)


def check_n(n: int, layer_map: LayerMap) -> None:
    if not 0 <= n <= num_layers(layer_map):
        raise SynthgapError(f"number of transferred layers must be in 0..{num_layers(layer_map)}, got {n}")


def _owns(entry: str, key: str) -> bool:
    return key == entry or key.startswith(entry + ".")


def layer_of(key: str, layer_map: LayerMap) -> int:
    """The layer number a parameter, buffer or module name (e.g. ``layer2.0.downsample.1.weight``) belongs to."""
    owners = [n for n, entries in layer_map.items() if any(_owns(entry, key) for entry in entries)]
    if len(owners) != 1:
        raise SynthgapError(f"tensor {key!r} belongs to {len(owners)} layers of the layer map (expected exactly 1)")
    return owners[0]


def state_keys(model: nn.Module, layers: Iterable[int], layer_map: LayerMap) -> list[str]:
    """Names of the parameters and buffers (state_dict keys) of the given layers."""
    wanted = set(layers)
    return [key for key in model.state_dict() if layer_of(key, layer_map) in wanted]


def transfer(target: nn.Module, source: nn.Module, n: int, layer_map: LayerMap) -> None:
    """Copy weights and BatchNorm buffers of layers 1..n from `source` into `target` (shapes must match)."""
    check_n(n, layer_map)
    source_state = source.state_dict()
    keys = state_keys(target, range(1, n + 1), layer_map)
    with torch.no_grad():
        target_state = target.state_dict()
        for key in keys:
            if target_state[key].shape != source_state[key].shape:
                raise SynthgapError(
                    f"cannot transfer {key}: shape {tuple(source_state[key].shape)} in the source model, "
                    f"{tuple(target_state[key].shape)} in the target"
                )
            target_state[key].copy_(source_state[key])


def freeze(model: nn.Module, n: int, layer_map: LayerMap) -> None:
    """Stop training layers 1..n: no gradients, and (via `train_mode`) their BatchNorms stay in eval mode."""
    check_n(n, layer_map)
    # By parameter name, not sub-module: a layer may list bare parameters (a ViT's cls_token / pos_embed).
    for name, parameter in model.named_parameters():
        if layer_of(name, layer_map) <= n:
            parameter.requires_grad_(False)


def trainable_layers(model: nn.Module, layer_map: LayerMap) -> list[int]:
    return sorted({layer_of(name, layer_map) for name, p in model.named_parameters() if p.requires_grad})


def init_weights(module: nn.Module) -> None:
    """torchvision's ResNet initialisation, applicable to any sub-module (used again to re-initialise layers).

    Linear and LayerNorm layers get PyTorch's defaults (for a ViT's Linear layers that differs from timm's
    trunc-normal; experiments take fresh layers from a freshly built model, which uses the family's own init).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
        elif isinstance(m, nn.Linear | nn.LayerNorm):
            m.reset_parameters()


def reinitialize(model: nn.Module, first: int, layer_map: LayerMap) -> None:
    """Fresh initialisation of layers first..last (the part of a student trained on the second data set)."""
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for n in range(first, num_layers(layer_map) + 1):
            for name in layer_map[n]:
                if name in parameters:  # a bare parameter (token / position embedding): timm's ViT init
                    nn.init.trunc_normal_(parameters[name], std=0.02)
                else:
                    init_weights(model.get_submodule(name))


def frozen_batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorms whose affine parameters are all frozen. Their running statistics belong to the source model."""
    batchnorms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.affine]
    return [m for m in batchnorms if not any(p.requires_grad for p in m.parameters())]


def train_mode(model: nn.Module) -> nn.Module:
    """`model.train()`, except that frozen BatchNorms keep normalising with (and never update) their statistics."""
    model.train()
    for bn in frozen_batchnorms(model):
        bn.eval()
    return model


def batchnorms_of(model: nn.Module, layers: Iterable[int], layer_map: LayerMap) -> list[_BatchNorm]:
    """The BatchNorms inside the given layers (none for LayerNorm families)."""
    wanted = set(layers)
    return [m for name, m in model.named_modules() if isinstance(m, _BatchNorm) and layer_of(name, layer_map) in wanted]


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, n: int, layer_map: LayerMap, batches: Iterable[torch.Tensor]) -> None:
    """Replace the running statistics of layers 1..n's BatchNorms by plain averages over `batches` (AdaBN-style).

    Only those BatchNorms are in train mode during the pass, so no other statistic moves. A family whose `norm` is
    "layernorm" has no statistics to re-estimate: the pass then changes nothing.
    """
    norms = batchnorms_of(model, range(1, n + 1), layer_map)
    model.eval()
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches
        bn.train()
    for images in batches:
        model(images)
    for bn, momentum in zip(norms, momenta, strict=True):
        bn.momentum = momentum
        bn.eval()
