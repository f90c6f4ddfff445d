"""The layer map: which modules make up each numbered weighted layer, and operations over layer prefixes.

A layer map is data (a table per architecture). Transfer, freezing and re-initialisation are written once against
that table, so adding another CNN means writing its table, not code.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from synthgap.errors import SynthgapError
from synthgap.models.resnet import init_weights
from synthgap.registry import Registry

LayerMap = dict[int, tuple[str, ...]]  # layer number (1-based) → module names
LAYER_MAPS: Registry[LayerMap] = Registry("layer map")


def _resnet18_layer_map() -> LayerMap:
    table: LayerMap = {1: ("conv1", "bn1")}
    number = 2
    for stage in range(1, 5):
        for block in range(2):
            for conv in (1, 2):
                modules = (f"layer{stage}.{block}.conv{conv}", f"layer{stage}.{block}.bn{conv}")
                if stage > 1 and block == 0 and conv == 2:
                    # The shortcut projection joins where the residual is added: after the block's second conv.
                    modules += (f"layer{stage}.{block}.downsample",)
                table[number] = modules
                number += 1
    table[number] = ("fc",)
    return table


LAYER_MAPS.add("resnet18", _resnet18_layer_map())


def num_layers(layer_map: LayerMap) -> int:
    return len(layer_map)


def check_n(n: int, layer_map: LayerMap) -> None:
    if not 0 <= n <= num_layers(layer_map):
        raise SynthgapError(f"number of transferred layers must be in 0..{num_layers(layer_map)}, got {n}")


def _owns(module_name: str, key: str) -> bool:
    return key == module_name or key.startswith(module_name + ".")


def layer_of(key: str, layer_map: LayerMap) -> int:
    """The layer number a parameter/buffer name (e.g. ``layer2.0.downsample.1.weight``) belongs to."""
    owners = [n for n, modules in layer_map.items() if any(_owns(m, key) for m in modules)]
    if len(owners) != 1:
        raise SynthgapError(f"tensor {key!r} belongs to {len(owners)} layers of the layer map (expected exactly 1)")
    return owners[0]


def state_keys(model: nn.Module, layers: Iterable[int], layer_map: LayerMap) -> list[str]:
    """Names of the parameters and buffers (state_dict keys) of the given layers."""
    wanted = set(layers)
    return [key for key in model.state_dict() if layer_of(key, layer_map) in wanted]


def modules_of(model: nn.Module, layers: Iterable[int], layer_map: LayerMap) -> list[nn.Module]:
    return [model.get_submodule(name) for n in sorted(set(layers)) for name in layer_map[n]]


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


def reinitialize(model: nn.Module, first: int, layer_map: LayerMap) -> None:
    """Fresh initialisation of layers first..last (the part of a student trained on the second data set)."""
    for module in modules_of(model, range(first, num_layers(layer_map) + 1), layer_map):
        init_weights(module)


def freeze(model: nn.Module, n: int, layer_map: LayerMap) -> None:
    """Stop training layers 1..n: no gradients, and (via `train_mode`) their BatchNorms stay in eval mode."""
    check_n(n, layer_map)
    for module in modules_of(model, range(1, n + 1), layer_map):
        module.requires_grad_(False)


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


def trainable_layers(model: nn.Module, layer_map: LayerMap) -> list[int]:
    return sorted({layer_of(name, layer_map) for name, p in model.named_parameters() if p.requires_grad})


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, n: int, layer_map: LayerMap, batches: Iterable[torch.Tensor]) -> None:
    """Replace the running statistics of layers 1..n's BatchNorms by plain averages over `batches` (AdaBN-style).

    Only those BatchNorms are in train mode during the pass, so no other statistic moves.
    """
    norms = [m for m in modules_of(model, range(1, n + 1), layer_map) if isinstance(m, _BatchNorm)]
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
