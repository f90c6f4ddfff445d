"""Ablation runs: is the gap R − S something cheaper to fix than the last layers?

Each run trains (or reuses from the model cache) one student and records, besides the contract fields, which
ablation it belongs to (`ablation`) and the setting it compares (`variant`):
  normalization  the statistics the synthetic-trained student is normalized with, and AdaBN on real images
  augmentation   from-scratch students of each side under one augmentation preset
  texture_shape  accuracy on cue-conflict variants of the real test set, and a texture-reliance score
  generator      from-scratch students of different synthetic sources
  mixing         real and synthetic images in one set; synthetic pretraining then full fine-tuning on real
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch import nn

from synthgap.data.cache import ImageTensors, concat_images
from synthgap.data.cues import CueVariants, texture_reliance
from synthgap.data.loader import TensorLoader
from synthgap.data.stats import dataset_stats
from synthgap.data.subsets import stratified_positions
from synthgap.data.transforms import Normalization
from synthgap.experiments.plan import Run
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runner import (
    DataStore,
    ModelCache,
    cached_scratch_model,
    ensure_scratch_model,
    record_for,
    scratch_record,
    stage2_recipe,
    train_from_source,
)
from synthgap.experiments.spec import ExperimentSpec
from synthgap.models.layers import LAYER_MAPS, num_layers, reestimate_batchnorm
from synthgap.train.loaders import eval_loader, test_normalization
from synthgap.train.loop import default_device, evaluate
from synthgap.train.recipe import TrainRecipe


def _scratch_record(run: Run, spec: ExperimentSpec, store: DataStore, cache: ModelCache, run_dir: Path,
                    progress: bool, train: ImageTensors, recipe: TrainRecipe, **fields) -> ResultRecord:  # fmt: skip
    """A from-scratch student's record (cached like the baselines), labelled with its ablation and variant."""
    return scratch_record(run, spec, store, cache, run_dir, progress, train, recipe, ablation=run.ablation,
                          variant=run.variant, **fields)  # fmt: skip


# --- normalization -------------------------------------------------------------------------------------------------


def normalization_recipe(choice: str, side: str, spec: ExperimentSpec, store: DataStore) -> TrainRecipe:
    """The spec's recipe with the training (and, for per_dataset, test) normalization of `choice`."""
    stats = lambda images: dataset_stats(images, spec.data.cache_dir)  # noqa: E731 - measured on training images
    if choice == "imagenet":
        updates = {"normalization": "imagenet", "test_normalization": None}
    elif choice in ("synthetic", "real"):
        updates = {"normalization": stats(store.train(choice)), "test_normalization": None}
    elif choice == "per_dataset":  # the real test set is normalized with the real data set's own statistics
        updates = {"normalization": stats(store.train(side)),
                   "test_normalization": stats(store.train_ref(spec.data.test))}  # fmt: skip
    else:
        raise ValueError(f"unknown normalization choice {choice!r}")
    return spec.recipe.model_copy(update=updates)


def _stats_fields(recipe: TrainRecipe) -> dict[str, list[float] | str]:
    def describe(value: str | Normalization | None) -> list[float] | str | None:
        return [*value.mean, *value.std] if isinstance(value, Normalization) else value

    return {"train_normalization": describe(recipe.normalization),
            "test_normalization": describe(recipe.test_normalization or recipe.normalization)}  # fmt: skip


def run_normalization(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool):
    recipe = normalization_recipe(run.normalization, run.target, spec, store)
    train = store.train(run.target)
    if not run.adabn:
        return _scratch_record(run, spec, store, cache, run_dir, progress, train, recipe, adabn=False,
                               **_stats_fields(recipe))  # fmt: skip
    key, _ = ensure_scratch_model(train, spec, recipe, store, cache, run, run_dir, progress)
    start = time.perf_counter()
    model, _ = cache.load(key, spec, len(train.classes))
    unlabelled_real = store.train("real")
    adapt_batchnorm(model, unlabelled_real, recipe, spec.model.name)
    top1, top5 = evaluate(model, eval_loader(store.test(), recipe), precision=recipe.precision)
    return record_for(run, spec, source=None, n_transferred=0, frozen=False, epochs=recipe.epochs, top1=top1,
                      top5=top5, train_images=len(train), seconds=time.perf_counter() - start, model_key=key,
                      ablation=run.ablation, variant=run.variant, adabn=True, adabn_images=len(unlabelled_real),
                      **_stats_fields(recipe))  # fmt: skip


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, images: ImageTensors, recipe: TrainRecipe, model_name: str) -> None:
    """AdaBN: every BatchNorm's running statistics replaced by their average over `images` (labels unused),
    normalized as the model sees test images."""
    layer_map = LAYER_MAPS.get(model_name)
    device = default_device()
    model.to(device)
    # whole batches only: every batch counts equally in the average, and a last batch of one image would make
    # BatchNorm on 1×1 maps fail
    loader = TensorLoader(images, batch_size=recipe.batch_size, normalization=test_normalization(recipe),
                          drop_last=True, channels_last=recipe.channels_last)  # fmt: skip
    batches = (batch.to(device) for batch, _ in loader.epoch(0))
    reestimate_batchnorm(model, num_layers(layer_map), layer_map, batches)


# --- augmentation and generator ------------------------------------------------------------------------------------


def run_augmentation(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool):
    recipe = spec.recipe.model_copy(update={"augmentation": run.augmentation})
    return _scratch_record(run, spec, store, cache, run_dir, progress, store.train(run.target), recipe,
                           augmentation=run.augmentation)  # fmt: skip


def run_generator(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool):
    train = store.train_ref(run.train_ref)
    return _scratch_record(run, spec, store, cache, run_dir, progress, train, spec.recipe, target=run.train_ref)


# --- mixing --------------------------------------------------------------------------------------------------------


def mixed_training_set(run: Run, spec: ExperimentSpec, store: DataStore) -> tuple[ImageTensors, int, int]:
    """The training images of a mixing run and how many of them are real and synthetic.

    share s: per class, round(s·m) synthetic and m − round(s·m) real images, m = real images per class, so the
    set's size does not change with s; added r: all real images plus round(r·m) synthetic ones per class."""
    real = store.train("real")
    m = int(torch.bincount(real.labels).min())
    subset = lambda images, k: images.select(  # noqa: E731 - nested, stratified, seeded like every subset
        stratified_positions(images.labels.numpy(), images.classes, per_class=k, seed=spec.data.subset_seed)
    )
    if run.synthetic_share is not None:
        synthetic_k = round(run.synthetic_share * m)
        parts = [(subset(real, m - synthetic_k), "real")] if synthetic_k < m else []
        if synthetic_k:
            parts.append((subset(store.train("synthetic"), synthetic_k), "synthetic"))
    else:
        everything = store.train_ref(spec.data.synthetic, all_images=True)
        parts = [(real, "real"), (subset(everything, round(run.added_synthetic * m)), "synthetic")]
    count = lambda side: sum(len(images) for images, s in parts if s == side)  # noqa: E731
    return concat_images([images for images, _ in parts]), count("real"), count("synthetic")


def run_mixing(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool):
    if run.source is not None:  # synthetic pretraining, then every layer fine-tuned on the real images
        start = time.perf_counter()
        recipe = stage2_recipe(spec, run)
        train = store.train("real")
        _, result, _ = train_from_source(run, spec, store, cache, train, recipe, run_dir, progress)
        return record_for(run, spec, source=spec.data.ref(run.source), n_transferred=run.n, frozen=False,
                          epochs=recipe.epochs, top1=result.top1, top5=result.top5, train_images=len(train),
                          seconds=time.perf_counter() - start, ablation=run.ablation, variant=run.variant,
                          real_images=len(train), synthetic_images=len(store.train(run.source)))  # fmt: skip
    train, real_images, synthetic_images = mixed_training_set(run, spec, store)
    target = f"{spec.data.real}+{spec.data.synthetic}"
    return _scratch_record(run, spec, store, cache, run_dir, progress, train, spec.recipe, target=target,
                           synthetic_share=run.synthetic_share, added_synthetic=run.added_synthetic,
                           real_images=real_images, synthetic_images=synthetic_images)  # fmt: skip


# --- texture vs shape ----------------------------------------------------------------------------------------------


CUE_CHUNK = 2048  # test images turned into variants at a time: bounded memory at 224 px


def cue_accuracies(model: nn.Module, test: ImageTensors, recipe: TrainRecipe, variants: CueVariants) -> dict:
    """Top-1 (%) of `model` on each cue variant of the test images, made chunk by chunk from one seeded generator,
    so every student sees the same variants, whatever the chunk size."""
    generator = torch.Generator().manual_seed(variants.seed)
    correct: dict[str, float] = {}
    for start in range(0, len(test), CUE_CHUNK):
        labels = test.labels[start : start + CUE_CHUNK]
        chunk_variants = variants.apply(test.images[start : start + CUE_CHUNK], generator)
        for name, images in chunk_variants.items():
            loader = eval_loader(ImageTensors(images, labels, test.classes), recipe)
            top1, _ = evaluate(model, loader, precision=recipe.precision)
            correct[name] = correct.get(name, 0.0) + top1 * len(labels)
    return {name: round(total / len(test), 2) for name, total in correct.items()}


def run_texture_shape(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool):
    start = time.perf_counter()
    test = store.test()
    train = store.train(run.target)
    if run.source is None:  # a baseline student, from the model cache (trained now if no run trained it yet)
        recipe = spec.recipe
        key, top1, top5, _ = cached_scratch_model(train, spec, recipe, store, cache, run, run_dir, progress)
        model, _ = cache.load(key, spec, len(test.classes))
        model.to(default_device())
    else:  # a transfer student, trained as in the layer sweep
        recipe = stage2_recipe(spec, run)
        model, result, _ = train_from_source(run, spec, store, cache, train, recipe, run_dir, progress)
        top1, top5 = result.top1, result.top5
    accuracy = cue_accuracies(model, test, recipe, CueVariants(blur_sigma=run.cue_sigma, grid=run.cue_grid))
    reliance = texture_reliance(accuracy, len(test.classes))
    return record_for(run, spec, source=spec.data.ref(run.source) if run.source else None, n_transferred=run.n,
                      frozen=run.freeze, epochs=recipe.epochs, top1=top1, top5=top5, train_images=len(train),
                      seconds=time.perf_counter() - start, ablation=run.ablation, variant=run.variant,
                      cue_top1=accuracy, texture_reliance=None if math.isnan(reliance) else round(reliance, 4),
                      cue_sigma=run.cue_sigma, cue_grid=run.cue_grid)  # fmt: skip


ABLATIONS = {
    "normalization": run_normalization,
    "augmentation": run_augmentation,
    "texture_shape": run_texture_shape,
    "generator": run_generator,
    "mixing": run_mixing,
}
