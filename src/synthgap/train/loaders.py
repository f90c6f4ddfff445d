"""Loaders as a recipe asks for them: shuffled, augmented training batches and plain test batches."""

from __future__ import annotations

import torch

from synthgap.data.loader import TensorLoader
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import Normalization, build_augmentation, get_normalization
from synthgap.train.recipe import TrainRecipe


def recipe_loaders(
    train: ImageTensors, test: ImageTensors, recipe: TrainRecipe, seed: int, targets: torch.Tensor | None = None
) -> tuple[TensorLoader, TensorLoader]:
    """Shuffled, augmented training batches (yielding `targets` rows in place of the labels when given) and plain
    test batches."""
    normalization = get_normalization(recipe.normalization)
    train_loader = TensorLoader(
        train,
        batch_size=recipe.batch_size,
        normalization=normalization,
        augmentation=build_augmentation(recipe.augmentation, train.view_size),
        shuffle=True,
        drop_last=True,
        seed=seed,
        channels_last=recipe.channels_last,
        targets=targets,
    )
    return train_loader, eval_loader(test, recipe)


def test_normalization(recipe: TrainRecipe) -> Normalization:
    """How the recipe's students see test images: the test normalization when set, else the training one."""
    return get_normalization(recipe.test_normalization or recipe.normalization)


def eval_loader(images: ImageTensors, recipe: TrainRecipe) -> TensorLoader:
    """Plain batches of `images` as the recipe's students are tested on them (centre-cropped to the training
    resolution when stored larger: the resize-then-centre-crop test view of ImageNet recipes)."""
    return TensorLoader(
        images,
        batch_size=recipe.eval_batch_size,
        normalization=test_normalization(recipe),
        channels_last=recipe.channels_last,
    )
