"""Stage 2 of a layer-transfer run: a student with layers 1..N from a source model, the rest trained on the target.

With frozen layers and no stage-2 augmentation, the frozen prefix maps each image to the same features in every
epoch, so they are computed once and only the suffix trains (the main speed lever of layer sweeps).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from synthgap.data.cache import ImageTensors
from synthgap.data.loader import FeatureLoader, TensorLoader
from synthgap.data.transforms import get_normalization
from synthgap.models.layers import LayerMap, freeze, reestimate_batchnorm, transfer
from synthgap.models.split import ResNetPrefix, ResNetSuffix, supports_prefix_cut
from synthgap.train.loaders import recipe_loaders
from synthgap.train.loop import FitResult, default_device, evaluate, fit
from synthgap.train.recipe import TrainRecipe

MAX_CACHED_FEATURE_BYTES = 4 << 30  # beyond this the prefix is recomputed every step rather than held in memory


@dataclass(frozen=True)
class TransferSetup:
    n: int
    freeze: bool = True
    rest: str = "reinit"  # "reinit" | "finetune"
    frozen_bn: str = "eval"  # "eval" | "reestimate"


def build_student(source: nn.Module, fresh: nn.Module, setup: TransferSetup, layer_map: LayerMap) -> nn.Module:
    """Layers 1..n from `source`; layers n+1..18 from `fresh` (reinit) or also from `source` (finetune)."""
    if setup.rest == "finetune":
        return copy.deepcopy(source)
    transfer(fresh, source, setup.n, layer_map)
    return fresh


def can_cache_prefix(student: nn.Module, setup: TransferSetup, recipe: TrainRecipe, train: ImageTensors) -> bool:
    if not (setup.freeze and 1 <= setup.n <= 17 and recipe.augmentation == "none" and supports_prefix_cut(student)):
        return False
    with torch.no_grad():
        sample = get_normalization(recipe.normalization)(train.images[:1]).to(next(student.parameters()).device)
        width = ResNetPrefix(student, setup.n).eval()(sample).shape[1]
    return len(train) * width * 4 <= MAX_CACHED_FEATURE_BYTES


def train_student(
    student: nn.Module,
    setup: TransferSetup,
    train: ImageTensors,
    test: ImageTensors,
    recipe: TrainRecipe,
    *,
    seed: int,
    layer_map: LayerMap,
    out_dir=None,
    progress: bool = True,
    desc: str = "stage 2",
) -> tuple[FitResult, bool]:
    """Prepare (BN re-estimation, freezing) and train the student; returns the fit result and whether the
    prefix cache was used. n = 18 frozen is the source model unchanged (only evaluated); n = 18 unfrozen is a full
    fine-tune of the source model."""
    train_loader, test_loader = recipe_loaders(train, test, recipe, seed)
    device = default_device()
    student.to(device)
    if setup.frozen_bn == "reestimate" and setup.n > 0:
        plain = TensorLoader(train, batch_size=recipe.eval_batch_size, normalization=train_loader.normalization)
        reestimate_batchnorm(student, setup.n, layer_map, (images.to(device) for images, _ in plain.epoch(0)))
    if setup.n == 18 and setup.freeze:
        top1, top5 = evaluate(student, test_loader, precision=recipe.precision, device=device)
        return FitResult(top1, top5, 0.0, 0), False
    if setup.freeze and setup.n > 0:
        freeze(student, setup.n, layer_map)
    if can_cache_prefix(student, setup, recipe, train):
        return _fit_suffix(student, setup.n, train_loader, test_loader, recipe, seed, out_dir, progress, desc), True
    return fit(student, train_loader, test_loader, recipe, out_dir=out_dir, progress=progress, desc=desc), False


def _fit_suffix(student, n, train_loader, test_loader, recipe, seed, out_dir, progress, desc) -> FitResult:
    prefix = ResNetPrefix(student, n)
    train_features = prefix_features(prefix, train_loader)
    test_features = prefix_features(prefix, test_loader)
    suffix = ResNetSuffix(student, n, prefix.shapes)
    feature_train = FeatureLoader(train_features, train_loader.data.labels, batch_size=recipe.batch_size,
                                  shuffle=True, drop_last=True, seed=seed)  # fmt: skip
    feature_test = FeatureLoader(test_features, test_loader.data.labels, batch_size=recipe.eval_batch_size)
    suffix_recipe = recipe.model_copy(update={"channels_last": False})  # features are flat vectors
    return fit(suffix, feature_train, feature_test, suffix_recipe, out_dir=out_dir, progress=progress, desc=desc)


@torch.no_grad()
def prefix_features(prefix: ResNetPrefix, loader: TensorLoader) -> torch.Tensor:
    """Frozen-prefix outputs of every image in loader order (no augmentation: the loader's is `none`), on the CPU."""
    prefix.eval()
    device = next(prefix.parameters()).device
    plain = TensorLoader(loader.data, batch_size=max(loader.batch_size, 256), normalization=loader.normalization,
                         channels_last=loader.channels_last)  # fmt: skip
    return torch.cat([prefix(images.to(device)).cpu() for images, _ in plain.epoch(0)])
