"""Normalization ablation: the statistics a student is normalized with, and AdaBN on unlabelled real images."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from synthgap.data.loader import TensorLoader
from synthgap.data.stats import dataset_stats
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import Normalization
from synthgap.experiments.blocks import Side, Strict
from synthgap.experiments.results import AblationRecord
from synthgap.experiments.runs import DataUse, Kind, Run, RunContext
from synthgap.experiments.students import ensure_scratch_model, evaluation_fields, scratch_fields, scratch_student
from synthgap.models import ModelFamily, reestimate_batchnorm
from synthgap.train.loaders import eval_loader, test_normalization
from synthgap.train.loop import measure
from synthgap.train.recipe import TrainRecipe

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings
    from synthgap.models import ModelFamily


class NormalizationRecord(AblationRecord):
    ablation: Literal["normalization"] = "normalization"
    normalization: str | None = None  # imagenet | synthetic | real | per_dataset
    adabn: bool = False
    adabn_images: int | None = None
    train_normalization: list[float] | str | None = None
    test_normalization: list[float] | str | None = None
    model_key: str | None = None


NormalizationChoice = Literal["imagenet", "synthetic", "real", "per_dataset"]


class NormalizationBlock(Strict):
    """Students trained from scratch under different normalization statistics (measured on the training images):
    imagenet: the ImageNet constants; synthetic / real: one side's statistics for training and test; per_dataset:
    each data set normalized with its own (training side's for training, the real side's for the real test set).
    With `adabn`, every such student is also tested after re-estimating all its BatchNorm statistics on the
    unlabelled real training images."""

    kind: Literal["normalization"]
    stats: list[NormalizationChoice] = ["imagenet", "synthetic", "real", "per_dataset"]
    sides: list[Side] = ["synthetic"]
    adabn: bool = True
    seeds: list[int] | None = Field(None, min_length=1)


@dataclass(frozen=True)
class NormalizationRun(Run):
    side: Side = "synthetic"
    choice: str = "imagenet"  # imagenet | synthetic | real | per_dataset
    adabn: bool = False  # BatchNorm statistics re-estimated on unlabelled real images
    kind: ClassVar[str] = "ablation"
    ablation: ClassVar[str] = "normalization"

    def needs(self) -> tuple[Run, ...]:
        """An AdaBN run adapts the model its plain sibling trains."""
        return (
            (NormalizationRun(self.name.removesuffix("-adabn"), self.seed, self.side, self.choice),)
            if self.adabn
            else ()
        )

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        used = {"train": DataUse(spec.data.ref(self.side))}
        if self.choice in ("synthetic", "real"):
            used["statistics"] = DataUse(spec.data.ref(self.choice))
        if self.choice == "per_dataset":
            used["test statistics"] = DataUse(spec.data.test)
        if self.adabn:
            used["adabn"] = DataUse(spec.data.real)
        return used

    @property
    def variant(self) -> str:
        return f"{self.choice}+adabn" if self.adabn else self.choice


def plan(block: NormalizationBlock, seeds: list[int], spec: Settings) -> list[NormalizationRun]:
    runs = []
    for seed in seeds:
        for side in block.sides:
            for choice in block.stats:
                plain = NormalizationRun(f"ablation-normalization-{side}-{choice}-s{seed}", seed, side, choice)
                runs.append(plain)
                if block.adabn:
                    runs.append(NormalizationRun(f"{plain.name}-adabn", seed, side, choice, adabn=True))
    return runs


def normalization_recipe(choice: str, side: str, ctx: RunContext) -> TrainRecipe:
    """The spec's recipe with the training (and, for per_dataset, test) normalization of `choice`."""
    spec, store = ctx.spec, ctx.store

    def stats(images: ImageTensors) -> Normalization:  # measured on training images
        return dataset_stats(images, spec.data.cache_dir)

    if choice == "imagenet":
        updates = {"normalization": "imagenet", "test_normalization": None}
    elif choice in ("synthetic", "real"):
        updates = {"normalization": stats(store.train(choice)), "test_normalization": None}
    elif choice == "per_dataset":  # the real test set is normalized with the real data set's own statistics
        updates = {
            "normalization": stats(store.train(side)),
            "test_normalization": stats(store.train_ref(spec.data.test)),
        }
    else:
        raise ValueError(f"unknown normalization choice {choice!r}")
    return spec.recipe.model_copy(update=updates)


def _stats_fields(recipe: TrainRecipe) -> dict[str, list[float] | str | None]:
    def describe(value: str | Normalization | None) -> list[float] | str | None:
        return [*value.mean, *value.std] if isinstance(value, Normalization) else value

    return {
        "train_normalization": describe(recipe.normalization),
        "test_normalization": describe(recipe.test_normalization or recipe.normalization),
    }


@torch.no_grad()
def adapt_batchnorm(
    model: nn.Module, images: ImageTensors, recipe: TrainRecipe, family: ModelFamily, device: torch.device
) -> None:
    """AdaBN: every BatchNorm's running statistics replaced by their average over `images` (labels unused),
    normalized as the model sees test images."""
    model.to(device)
    # whole batches only: every batch counts equally in the average, and a last batch of one image would make
    # BatchNorm on 1×1 maps fail
    loader = TensorLoader(
        images,
        batch_size=recipe.batch_size,
        normalization=test_normalization(recipe),
        drop_last=True,
        channels_last=recipe.channels_last,
    )
    batches = (batch for batch, _ in loader.on(device).epoch(0))
    reestimate_batchnorm(model, family.num_layers, family.layer_map, batches)


def execute(run: NormalizationRun, ctx: RunContext) -> NormalizationRecord:
    recipe = normalization_recipe(run.choice, run.side, ctx)
    train = ctx.store.train(run.side)
    common = {
        **ctx.record_fields(run, run.side),
        "variant": run.variant,
        "normalization": run.choice,
        **_stats_fields(recipe),
    }
    if not run.adabn:
        student = scratch_student(ctx, run, train, recipe)
        return NormalizationRecord(**common, **scratch_fields(student, train, recipe), adabn=False)
    key, _ = ensure_scratch_model(ctx, run, train, recipe)
    start = time.perf_counter()
    model, _ = ctx.models.load(key, ctx.model_config(len(train.classes)))
    unlabelled_real = ctx.store.train("real")
    adapt_batchnorm(model, unlabelled_real, recipe, ctx.family, ctx.device)
    evaluation = measure(model, eval_loader(ctx.store.test(), recipe), precision=recipe.precision, tta=recipe.tta)
    return NormalizationRecord(
        **common,
        epochs=recipe.epochs,
        train_images=len(train),
        seconds=time.perf_counter() - start,
        model_key=key,
        adabn=True,
        adabn_images=len(unlabelled_real),
        **evaluation_fields(evaluation),
    )


def check(block: NormalizationBlock, spec: Settings, family: ModelFamily) -> None:
    if block.adabn and family.norm != "batchnorm":
        raise ValueError(f"normalization adabn needs BatchNorm layers; {family.name} uses {family.norm}")


KIND = Kind(
    "normalization", NormalizationBlock, plan, (NormalizationRun,), execute, records=(NormalizationRecord,), check=check
)
