"""Stage 2 of a layer-transfer run: a student with layers 1..N from a source model, the rest trained on the target.

With frozen layers and no stage-2 augmentation, the frozen prefix maps each image to the same features in every
epoch, so they are computed once and only the suffix trains (the main speed lever of layer sweeps). The model
family decides where its layers can be cut; a family without a cut trains the frozen student whole.

Model stitching (`train_stitch`) uses the same cut: one model's frozen prefix, a trained stitch, another model's
frozen suffix, on features computed once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synthgap.data.loader import FeatureLoader, TensorLoader
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import get_normalization
from synthgap.models import ModelFamily, freeze, reestimate_batchnorm, transfer
from synthgap.models.stitch import Stitch, Stitched, packed_shapes
from synthgap.train.loaders import recipe_loaders
from synthgap.train.loop import Evaluation, FitResult, autocast, autocast_dtype, default_device, fit, measure
from synthgap.train.recipe import TrainRecipe
from synthgap.train.tta import PLAIN, View, apply_view, tta_views

MAX_CACHED_FEATURE_BYTES = 4 << 30  # beyond this the prefix is recomputed every step rather than held in memory
PREFIX_BATCH = 256  # images per prefix pass when caching features (at least the training batch size)
STITCH_START_IMAGES = 2000  # training images the least-squares start of a stitch is fitted on


@dataclass(frozen=True)
class TransferSetup:
    n: int
    freeze: bool = True
    rest: str = "reinit"  # "reinit" | "finetune"
    frozen_bn: str = "eval"  # "eval" | "reestimate"


@dataclass(frozen=True)
class StageTwoResult:
    fit: FitResult
    prefix_cache: bool  # the frozen prefix's outputs were computed once
    prefix_cache_note: str | None = None  # why they were not, when the run was eligible


def build_student(source: nn.Module, fresh: nn.Module, setup: TransferSetup, family: ModelFamily) -> nn.Module:
    """Layers 1..n from `source`; the later layers from `fresh` (reinit) or also from `source` (finetune)."""
    if setup.rest == "finetune":
        return copy.deepcopy(source)
    transfer(fresh, source, setup.n, family.layer_map)
    return fresh


def qualifies_for_prefix_cache(freeze: bool, n: int, num_layers: int, augmentation: str) -> bool:
    """Whether a stage 2 may train on its frozen prefix's outputs computed once: layers 1..n frozen with a cut
    inside the model, and no stage-2 augmentation (every epoch must see the same outputs). Also what names the
    suffix's memory format in a run's identity (`identity.suffix_arithmetic`)."""
    return freeze and 1 <= n < num_layers and augmentation == "none"


def prefix_cache_plan(
    student: nn.Module, setup: TransferSetup, recipe: TrainRecipe, train: ImageTensors, family: ModelFamily
) -> tuple[bool, str | None]:
    """(whether the frozen prefix's outputs are cached, why not when the run would have qualified)."""
    if not qualifies_for_prefix_cache(setup.freeze, setup.n, family.num_layers, recipe.augmentation):
        return False, None
    if not family.has_cut():
        return False, f"model family {family.name} has no prefix cut: the frozen layers run in every step"
    prefix, _ = family.split(student, setup.n)
    device = next(student.parameters()).device
    width = _packed_width(prefix, train, get_normalization(recipe.normalization), device)
    if len(train) * width * 4 > MAX_CACHED_FEATURE_BYTES:
        return False, "the prefix outputs would exceed the feature memory limit: recomputed in every step"
    return True, None


def train_student(
    student: nn.Module,
    setup: TransferSetup,
    train: ImageTensors,
    test: ImageTensors,
    recipe: TrainRecipe,
    *,
    seed: int,
    family: ModelFamily,
    device: torch.device | None = None,
    out_dir=None,
    progress: bool = True,
    desc: str = "stage 2",
    state_dir: Path | None = None,
    state_token: str | None = None,
    resident: bool | None = None,
    gpu_share: float = 1.0,
) -> StageTwoResult:
    """Prepare (BN re-estimation, freezing) and train the student. n = L frozen (every layer) is the source model
    unchanged (only evaluated); n = L unfrozen is a full fine-tune of the source model. `resident` and `gpu_share`
    decide where the training images are kept on a GPU (see `fit`)."""
    layer_map = family.layer_map
    train_loader, test_loader = recipe_loaders(train, test, recipe, seed)
    device = device or default_device()
    student.to(device)
    if setup.frozen_bn == "reestimate" and setup.n > 0:
        plain = TensorLoader(train, batch_size=recipe.eval_batch_size, normalization=train_loader.normalization)
        batches = (images for images, _ in plain.on(device).epoch(0))
        reestimate_batchnorm(student, setup.n, layer_map, batches)
    if setup.n == family.num_layers and setup.freeze:
        evaluation = measure(student, test_loader, precision=recipe.precision, device=device, tta=recipe.tta)
        return StageTwoResult(FitResult(evaluation.top1, evaluation.top5, 0.0, 0, evaluation=evaluation), False)
    if setup.freeze and setup.n > 0:
        freeze(student, setup.n, layer_map)
    cached, note = prefix_cache_plan(student, setup, recipe, train, family)
    common = {
        "out_dir": out_dir,
        "progress": progress,
        "desc": desc,
        "device": device,
        "state_dir": state_dir,
        "state_token": state_token,
        "resident": resident,
        "gpu_share": gpu_share,
    }
    if cached:
        prefix, suffix = family.split(student, setup.n)
        result = fit_on_prefix(prefix, suffix, train_loader, test_loader, recipe, seed, **common)
        return StageTwoResult(result, True)
    return StageTwoResult(fit(student, train_loader, test_loader, recipe, **common), False, note)


def prefix_loaders(
    prefix: nn.Module, train_loader: TensorLoader, test_loader: TensorLoader, recipe: TrainRecipe, seed: int
) -> tuple[FeatureLoader, FeatureLoader]:
    """Loaders of the frozen `prefix`'s outputs, computed once: for the training images (shuffled like
    `train_loader`), the test images and, for test-time augmentation, each of their other views. The loaders must not
    augment (every epoch would see other images)."""
    # in the recipe's precision, as the prefix runs inside every training step of the ordinary path (on a bf16 CPU
    # an fp32 feature pass cost as much as the suffix's whole training)
    precision = recipe.precision
    train_features = prefix_features(prefix, train_loader, precision=precision)
    test_features, *views = (
        prefix_features(prefix, test_loader, view=view, precision=precision) for view in tta_views(recipe.tta)
    )
    feature_train = FeatureLoader(
        train_features, train_loader.data.labels, batch_size=recipe.batch_size, shuffle=True, drop_last=True, seed=seed
    )
    feature_test = FeatureLoader(
        test_features, test_loader.data.labels, batch_size=recipe.eval_batch_size, views=tuple(views)
    )
    return feature_train, feature_test


def fit_on_prefix(
    prefix: nn.Module,
    head: nn.Module,
    train_loader: TensorLoader,
    test_loader: TensorLoader,
    recipe: TrainRecipe,
    seed: int,
    **fit_options,
) -> FitResult:
    """Train `head` (a suffix, or a stitch and a suffix) on the outputs of the frozen `prefix` (`prefix_loaders`);
    `fit_options` go to `fit`."""
    feature_train, feature_test = prefix_loaders(prefix, train_loader, test_loader, recipe, seed)
    return fit(head, feature_train, feature_test, recipe, **fit_options)


@dataclass(frozen=True)
class StitchResult:
    fit: FitResult
    start: Evaluation  # the stitched model before its stitch trained (the least-squares start)
    parameters: int  # the stitch's trainable parameters
    prefix_cache: bool  # the giver's prefix outputs were computed once (else: in every step, beyond the memory limit)


def train_stitch(
    giver: nn.Module,
    receiver: nn.Module,
    n: int,
    family: ModelFamily,
    train: ImageTensors,
    test: ImageTensors,
    recipe: TrainRecipe,
    *,
    seed: int,
    device: torch.device | None = None,
    start_images: int = STITCH_START_IMAGES,
    **fit_options,
) -> StitchResult:
    """`giver`'s layers 1..n → a stitch → `receiver`'s layers n+1..L, both models frozen; the stitch starts from the
    least-squares map between the two models' features at the cut on `start_images` training images (evenly spread)
    and is then trained with the recipe (which must not augment) on `train`. `fit_options` go to `fit`."""
    device = device or default_device()
    for model in (giver, receiver):
        model.to(device).eval().requires_grad_(False)
    giver_prefix, _ = family.split(giver, n)
    receiver_prefix, receiver_suffix = family.split(receiver, n)
    train_loader, test_loader = recipe_loaders(train, test, recipe, seed)
    width = _packed_width(giver_prefix, train, train_loader.normalization, device)
    # the least-squares start holds both models' features of its images: at most a quarter of the feature limit
    count = max(1, min(start_images, len(train), MAX_CACHED_FEATURE_BYTES // (8 * width * 4)))
    positions = np.unique(np.linspace(0, len(train) - 1, count).astype(np.int64))
    sample = TensorLoader(
        train.select(positions), batch_size=recipe.eval_batch_size, normalization=train_loader.normalization
    )
    given = prefix_features(giver_prefix, sample, precision=recipe.precision)
    wanted = prefix_features(receiver_prefix, sample, precision=recipe.precision)  # also tells the suffix its shapes
    stitch = Stitch(packed_shapes(giver_prefix))
    stitch.start_from(given, wanted)
    del given, wanted
    stitched = Stitched(stitch, receiver_suffix).to(device)
    test_images = len(test) * len(tta_views(recipe.tta))
    cached = (len(train) + test_images) * width * 4 <= MAX_CACHED_FEATURE_BYTES
    if cached:  # the giver's prefix outputs once, as the layer sweep's stage 2 does
        head: nn.Module = stitched
        fit_train, fit_test = prefix_loaders(giver_prefix, train_loader, test_loader, recipe, seed)
    else:  # too large to hold: the frozen prefix runs in every step
        head, fit_train, fit_test = nn.Sequential(giver_prefix, stitched), train_loader, test_loader
    start = measure(head, fit_test, precision=recipe.precision, device=device, tta=recipe.tta)
    result = fit(head, fit_train, fit_test, recipe, device=device, **fit_options)
    return StitchResult(result, start, sum(p.numel() for p in stitch.parameters()), cached)


@torch.no_grad()
def _packed_width(prefix: nn.Module, images: ImageTensors, normalization, device: torch.device) -> int:
    """Values per image in the packed outputs of `prefix` (from one image)."""
    one = TensorLoader(images.select(np.arange(1)), batch_size=1, normalization=normalization)
    return prefix.eval()(next(one.epoch(0))[0].to(device)).shape[1]


@torch.no_grad()
def prefix_features(
    prefix: nn.Module, loader: TensorLoader, *, view: View = PLAIN, precision: str = "fp32"
) -> torch.Tensor:
    """Frozen-prefix outputs of every image (or of its test-time `view`) in loader order (no
    augmentation: the loader's is `none`), computed in `precision` and kept as fp32 on the CPU."""
    prefix.eval()
    device = next(prefix.parameters()).device
    plain = TensorLoader(
        loader.data,
        batch_size=max(loader.batch_size, PREFIX_BATCH),
        normalization=loader.normalization,
        channels_last=loader.channels_last,
    )
    batches = (apply_view(images, view) for images, _ in plain.on(device).epoch(0))
    with autocast(device, autocast_dtype(precision, device)):
        return torch.cat([prefix(images).float().cpu() for images in batches])
