"""Train stage: the recipe, the fit loop, evaluation (top-1/top-5) and safetensors checkpoints."""

from synthgap.train.checkpoint import (
    has_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    verify_checkpoint,
)
from synthgap.train.loop import FitResult, TrainStep, evaluate, fit, seed_everything
from synthgap.train.recipe import TrainRecipe

__all__ = [
    "FitResult",
    "TrainRecipe",
    "TrainStep",
    "evaluate",
    "fit",
    "has_checkpoint",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "seed_everything",
    "verify_checkpoint",
]
