"""Data reduction (the paper's Figures 3 and 4): students trained on nested, stratified fractions of the real data,
starting from the synthetic model's layers (transfer arms) or from scratch."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from synthgap.data.subsets import stratified_positions
from synthgap.experiments.blocks import Side, Strict, all_valid, check_layers, known_preset
from synthgap.experiments.results import OTHER_SIDE, ResultRecord
from synthgap.experiments.runs import BaselineRun, DataUse, Kind, Run, RunContext, baseline, caches_a_prefix
from synthgap.experiments.students import (
    evaluation_fields,
    resume_state,
    scratch_student,
    train_from_source,
    train_in_run,
)
from synthgap.experiments.transfer import TransferSetup
from synthgap.models import get_family
from synthgap.train.recipe import TrainRecipe

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings
    from synthgap.models import ModelFamily


class ReductionRecord(ResultRecord):
    kind: Literal["data_reduction"] = "data_reduction"
    arm: str = "unlabelled"
    x: float | None = None  # divisor of the real data: the student saw 1/x of it
    schedule: str = "same_steps"
    augmentation: str | None = None
    prefix_cache: bool = False

    @model_validator(mode="before")
    @classmethod
    def _old_line_source_side(cls, data: Any) -> Any:
        """A line written before `source_side` existed: a reduction's layers 1..N came from the synthetic side."""
        if (
            isinstance(data, dict)
            and data.get("source")
            and "source_side" not in data
            and data.get("side") in OTHER_SIDE
        ):
            return {**data, "source_side": "synthetic"}
        return data


Arm = Literal["transfer", "transfer_finetune", "scratch", "full_finetune"]


class DataReductionBlock(Strict):
    """Students trained on a fraction of the real data (nested stratified subsets), per arm:
    transfer: layers 1..k from the synthetic model, frozen, the rest re-initialised; transfer_finetune: the same with
    the rest kept from the synthetic model; scratch: the whole student; full_finetune: all layers from the synthetic
    model, all trained."""

    kind: Literal["data_reduction"]
    fractions: list[float] = [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64]
    seeds: list[int] | None = Field(None, min_length=1)
    k: int | None = Field(None, ge=1)  # layers from the synthetic model (default: L-2, the paper's 16 of 18)
    arms: list[Arm] = ["transfer", "transfer_finetune", "scratch"]
    # same_steps: every fraction gets the optimiser steps of the full set (smaller sets see more epochs), so a
    # curve measures less data, not less training; same_epochs: steps shrink with the fraction.
    schedule: Literal["same_steps", "same_epochs"] = "same_steps"
    augmentation: str | None = None  # stage-2 augmentation (default: the recipe's); "none" enables the prefix cache
    epochs: int | None = Field(None, ge=1)  # epochs at fraction 1 (default: the recipe's)

    @field_validator("augmentation")
    @classmethod
    def _known_augmentation(cls, value: str | None) -> str | None:
        return known_preset(value)

    @field_validator("fractions")
    @classmethod
    def _fractions_in_range(cls, values: list[float]) -> list[float]:
        return all_valid(values, lambda v: 0 < v <= 1, "fractions must be in (0, 1]")


@dataclass(frozen=True)
class ArmSetup:
    """How an arm's student starts: from the synthetic model's layers 1..n (None: none), frozen or not."""

    source: Side | None
    layers: str  # "k": the block's k; "all": every layer; "none"
    frozen: bool
    rest: str


ARMS = {
    "transfer": ArmSetup("synthetic", "k", True, "reinit"),
    "transfer_finetune": ArmSetup("synthetic", "k", True, "finetune"),
    "scratch": ArmSetup(None, "none", False, "reinit"),
    "full_finetune": ArmSetup("synthetic", "all", False, "finetune"),
}


@dataclass(frozen=True)
class ReductionRun(Run):
    arm: str = "transfer"
    n: int = 0  # layers taken from the synthetic model
    fraction: float = 1.0  # share of the real training images
    schedule: str = "same_steps"
    augmentation: str | None = None  # None: the recipe's
    epochs: int | None = None  # epochs at fraction 1; None: the recipe's
    kind: ClassVar[str] = "data_reduction"

    @property
    def setup(self) -> ArmSetup:
        return ARMS[self.arm]

    def trains_a_suffix(self, spec: Settings) -> bool:
        return self.setup.frozen and caches_a_prefix(self.n, self.augmentation or spec.recipe.augmentation, spec)

    def needs(self) -> tuple[BaselineRun, ...]:
        return (baseline(self.setup.source, self.seed),) if self.setup.source else ()

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        used = {"train": DataUse(spec.data.real)}
        if self.setup.source:
            used["source"] = DataUse(spec.data.ref(self.setup.source))
        return used


def divisor_label(fraction: float) -> str:
    """1/8 → "x8"; fractions that are not 1/integer keep three significant digits: 0.3 → "x3.33"."""
    return f"x{round(1 / fraction, 2):g}"


def plan(block: DataReductionBlock, seeds: list[int], spec: Settings) -> list[ReductionRun]:
    num_layers = get_family(spec.model.name).num_layers
    runs = []
    for seed in seeds:
        for arm in block.arms:
            setup = ARMS[arm]
            n = {"k": block.k, "all": num_layers, "none": 0}[setup.layers]
            augmentation = block.augmentation if setup.source else None  # scratch trains with the recipe's
            for fraction in block.fractions:
                layers = f"-k{block.k}" if setup.layers == "k" else ""  # k matters only to the transfer arms
                name = f"reduction-{arm}{layers}-{divisor_label(fraction)}-s{seed}-{block.schedule}"
                if augmentation is not None and augmentation != spec.recipe.augmentation:
                    name += f"-aug_{augmentation}"
                if block.epochs is not None and block.epochs != spec.recipe.epochs:
                    name += f"-e{block.epochs}"
                runs.append(ReductionRun(name, seed, arm, n, fraction, block.schedule, augmentation, block.epochs))
    return runs


def same_steps_epochs(recipe: TrainRecipe, full_images: int, fraction_images: int) -> int:
    """Epochs that give a fraction the optimiser steps the full set gets in `recipe.epochs` epochs."""

    def steps_per_epoch(images: int) -> int:
        return max(1, images // recipe.batch_size)  # drop_last batching, at least one

    return math.ceil(recipe.epochs * steps_per_epoch(full_images) / steps_per_epoch(fraction_images))


def same_steps_recipe(recipe: TrainRecipe, epochs: int) -> TrainRecipe:
    """`recipe` for `epochs` epochs of a smaller set, its learning curve stretched alike: as many evaluations as
    the full set's run makes (1/64 of the data would otherwise evaluate 64 times as often for the same steps)."""
    every = max(1, round(recipe.eval_every * epochs / recipe.epochs)) if recipe.eval_every else 0
    return recipe.model_copy(update={"epochs": epochs, "eval_every": every})


def execute(run: ReductionRun, ctx: RunContext) -> ReductionRecord:
    """One arm of the data-reduction experiment on a nested, stratified fraction of the real training images."""
    start = time.perf_counter()
    full = ctx.store.train("real")
    train = full
    if run.fraction < 1:
        positions = stratified_positions(full.labels.numpy(), full.classes, fraction=run.fraction, seed=run.seed)
        train = full.select(positions)
    recipe = ctx.stage2_recipe(run.augmentation, run.epochs)
    if run.schedule == "same_steps":
        recipe = same_steps_recipe(recipe, same_steps_epochs(recipe, len(full), len(train)))
    cached_prefix = False
    if run.setup.source is None and run.fraction == 1:  # the real baseline itself: reuse it when cached
        student = scratch_student(ctx, run, train, recipe)
        evaluation = student.evaluation
    elif run.setup.source is None:
        _, result = train_in_run(ctx, run, train, recipe, **resume_state(ctx, run))
        evaluation = result.evaluation
    else:
        (source,) = run.needs()
        setup = TransferSetup(n=run.n, freeze=run.setup.frozen, rest=run.setup.rest)
        source_train = ctx.store.train(run.setup.source)
        _, stage2 = train_from_source(ctx, run, source, source_train, setup, train, recipe)
        evaluation, cached_prefix = stage2.fit.evaluation, stage2.prefix_cache
    return ReductionRecord(
        **ctx.record_fields(run, "real"),
        **ctx.transfer_fields(run.setup.source, run.n, run.setup.frozen),
        real_fraction=run.fraction,
        epochs=recipe.epochs,
        train_images=len(train),
        seconds=time.perf_counter() - start,
        arm=run.arm,
        x=round(1 / run.fraction, 2),
        schedule=run.schedule,
        augmentation=recipe.augmentation,
        prefix_cache=cached_prefix,
        skipped_images=len(full.skipped),
        **evaluation_fields(evaluation),
    )


def check(block: DataReductionBlock, spec: Settings, family: ModelFamily) -> None:
    last = family.num_layers
    block.k = last - 2 if block.k is None else block.k
    check_layers([block.k], 1, last - 1, f"data_reduction k ({family.name} has {last} layers)")


KIND = Kind(
    "data_reduction", DataReductionBlock, plan, (ReductionRun,), execute, records=(ReductionRecord,), check=check
)
