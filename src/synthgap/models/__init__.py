"""Models stage: student builders and the layer map (transfer / freeze / re-initialise by layer number)."""

from synthgap.models.layers import (
    LAYER_MAPS,
    freeze,
    frozen_batchnorms,
    layer_of,
    reinitialize,
    train_mode,
    trainable_layers,
    transfer,
)
from synthgap.models.resnet import MODELS, ModelConfig, build_model

__all__ = [
    "LAYER_MAPS",
    "MODELS",
    "ModelConfig",
    "build_model",
    "freeze",
    "frozen_batchnorms",
    "layer_of",
    "reinitialize",
    "train_mode",
    "trainable_layers",
    "transfer",
]
