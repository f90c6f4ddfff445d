"""Models stage: model families (builder, layer map, norm type, prefix cut) and operations by layer number.

- `config.py`: `ModelConfig`, the one config every family is built from.
- `family.py`: `ModelFamily`, the `FAMILIES` registry (resnet18/34/50, vit_tiny/small) and `build_model`.
- `layers.py`: transfer / freeze / re-initialise / re-estimate BatchNorm over layers 1..n of any layer map.
- `resnet.py`, `split.py`: torchvision ResNets, their layer maps and their prefix/suffix cut.
- `vit.py`: timm Vision Transformers, their layer maps and their prefix/suffix cut.
"""

from synthgap.models.config import ModelConfig
from synthgap.models.family import FAMILIES, ModelFamily, build_model, get_family
from synthgap.models.layers import (
    LayerMap,
    check_n,
    freeze,
    frozen_batchnorms,
    init_weights,
    layer_of,
    num_layers,
    reestimate_batchnorm,
    reinitialize,
    state_keys,
    train_mode,
    trainable_layers,
    transfer,
)
from synthgap.models.resnet import CentreTapConv2d

__all__ = [
    "FAMILIES",
    "CentreTapConv2d",
    "LayerMap",
    "ModelConfig",
    "ModelFamily",
    "build_model",
    "check_n",
    "freeze",
    "frozen_batchnorms",
    "get_family",
    "init_weights",
    "layer_of",
    "num_layers",
    "reestimate_batchnorm",
    "reinitialize",
    "state_keys",
    "train_mode",
    "trainable_layers",
    "transfer",
]
