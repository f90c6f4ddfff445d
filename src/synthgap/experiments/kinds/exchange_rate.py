"""Exchange rate: how many synthetic images one real image is worth. From-scratch students on ladders of images per
class of each side (nested, stratified subsets), and optionally on m real images per class plus every synthetic one.
The report (`report/exchange_rate.py`) fits each side's curve and reads off the synthetic count that matches each
real rung."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from synthgap.data.config import AtMost, matched_count
from synthgap.data.sources import open_source
from synthgap.data.subsets import stratified_positions
from synthgap.data.tensors import ImageTensors, concat_images
from synthgap.errors import SynthgapError
from synthgap.experiments.blocks import Side, Strict, all_valid
from synthgap.experiments.kinds.data_reduction import same_steps_epochs, same_steps_recipe
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runs import DataUse, Kind, Run, RunContext
from synthgap.experiments.students import evaluation_fields, resume_state, scratch_student, train_in_run

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings

SHORT_CLASSES_NAMED = 5  # a refusal names this many short classes (smallest first), then counts the rest


def _ladder(values: list[int]) -> list[int]:
    """A ladder of images per class: every count at least 1, at least two distinct ones; returned sorted without
    repeats (a repeated count would plan the same run twice)."""
    all_valid(values, lambda v: v >= 1, "images per class must be at least 1")
    if len(set(values)) < 2:
        raise ValueError(f"a ladder needs at least two distinct counts to fit a curve through, got {values}")
    return sorted(set(values))


class ExchangeRateBlock(Strict):
    """From-scratch students on `real_per_class` real and `synthetic_per_class` synthetic images per class (nested,
    stratified subsets of each side's training set); with `mixing`, also on m real images per class plus all the
    synthetic training images, for every real rung m."""

    kind: Literal["exchange_rate"]
    real_per_class: list[int] = [10, 25, 50, 100, 250]
    synthetic_per_class: list[int] = [10, 25, 50, 100, 250, 500, 1000]
    seeds: list[int] | None = Field(None, min_length=1)
    # same_steps: every rung gets the optimiser steps its side's whole training set gets in recipe.epochs (smaller
    # sets see more epochs), so a curve measures less data, not less training; same_epochs: steps shrink with it.
    schedule: Literal["same_steps", "same_epochs"] = "same_steps"  # inline: the early key check reads it
    mixing: bool = False

    @field_validator("real_per_class", "synthetic_per_class")
    @classmethod
    def _valid_ladder(cls, values: list[int]) -> list[int]:
        return _ladder(values)


@dataclass(frozen=True)
class ExchangeRun(Run):
    """A from-scratch student on `per_class` images of each class of `side`; `mixed`: those real images plus every
    synthetic training image."""

    side: Side = "real"
    per_class: int = 0
    schedule: str = "same_steps"
    mixed: bool = False
    kind: ClassVar[str] = "exchange_rate"

    @property
    def arm(self) -> str:
        """The curve the run is a point of: "real", "synthetic" or "mix"."""
        return "mix" if self.mixed else self.side

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        used = {"train": DataUse(spec.data.ref(self.side))}
        if self.mixed:
            used["synthetic"] = DataUse(spec.data.synthetic)
        return used


class ExchangeRateRecord(ResultRecord):
    """One exchange-rate student. `side` (shared field) is its curve: real, synthetic or mix (m real per class plus
    every synthetic image); `per_class` its rung (for mix, the real images per class)."""

    kind: Literal["exchange_rate"] = "exchange_rate"
    per_class: int = 0
    real_images: int = 0
    synthetic_images: int = 0
    schedule: str = "same_steps"


def run_name(arm: str, per_class: int, seed: int, schedule: str) -> str:
    return f"exchange-{arm}-pc{per_class}-s{seed}-{schedule}"


def plan_runs(block: ExchangeRateBlock, seeds: list[int]) -> list[ExchangeRun]:
    """Every student of the block, without looking at the data."""
    rungs: list[tuple[Side, int, bool]] = [("real", m, False) for m in block.real_per_class]
    rungs += [("synthetic", s, False) for s in block.synthetic_per_class]
    if block.mixing:
        rungs += [("real", m, True) for m in block.real_per_class]
    runs = []
    for seed in seeds:
        for side, count, mixed in rungs:
            name = run_name("mix" if mixed else side, count, seed, block.schedule)
            runs.append(ExchangeRun(name, seed, side, count, block.schedule, mixed))
    return runs


def side_class_counts(spec: Settings, side: Side) -> dict[str, int]:
    """Training images per class that `side` will hold once the spec's `per_class` is applied, from its index alone
    (nothing decoded). An exact `per_class` is taken as given: a side short of it is refused by the pre-flight check
    in its own words, which this must not pre-empt."""
    data = spec.data
    counts = open_source(data.ref(side), "train", data.data_root).counts()
    rule = data.per_class
    if isinstance(rule, int):
        return dict.fromkeys(counts, rule)
    if isinstance(rule, AtMost):
        return {name: min(rule.max, count) for name, count in counts.items()}
    if rule == "balanced":
        return dict.fromkeys(counts, min(counts.values()))
    if rule == "matched":
        sides = [open_source(ref, "train", data.data_root) for ref in (data.real, data.synthetic)]
        return dict.fromkeys(counts, matched_count(sides))
    return counts


def ladder_shortage(what: str, ladder: list[int], side: Side, ref: str, counts: dict[str, int]) -> str | None:
    """A message naming the side and its classes with fewer images than the ladder's top rung (None: none short)."""
    wanted = max(ladder)
    short = sorted(((count, name) for name, count in counts.items() if count < wanted))
    if not short:
        return None
    named = ", ".join(f"{name} ({count})" for count, name in short[:SHORT_CLASSES_NAMED])
    more = f" and {len(short) - SHORT_CLASSES_NAMED} more" if len(short) > SHORT_CLASSES_NAMED else ""
    return (
        f"exchange_rate {what} asks for {wanted} images per class, but the {side} side ({ref}, train) has fewer in "
        f"{len(short)} class(es): {named}{more}"
    )


def check_counts(block: ExchangeRateBlock, spec: Settings) -> None:
    """Refuse a rung above what its side holds, before anything is decoded or trained (planning happens in
    --dry-run and in the runner before its first run; a kind's `check` cannot see the data)."""
    ladders: list[tuple[str, list[int], Side]] = [
        ("real_per_class", block.real_per_class, "real"),
        ("synthetic_per_class", block.synthetic_per_class, "synthetic"),
    ]
    problems = []
    for what, ladder, side in ladders:
        ref = spec.data.ref(side)
        problem = ladder_shortage(what, ladder, side, ref, side_class_counts(spec, side))
        if problem:
            problems.append(problem)
    if problems:  # both sides at once: fixing one and rerunning to meet the other wastes the user's time
        raise SynthgapError("; ".join(problems))


def plan(block: ExchangeRateBlock, seeds: list[int], spec: Settings) -> list[ExchangeRun]:
    check_counts(block, spec)
    return plan_runs(block, seeds)


def rung_subset(images: ImageTensors, per_class: int, seed: int, side: Side) -> ImageTensors:
    """`per_class` images of each class: a prefix of one seeded order per class, so for a seed a larger rung holds
    every image of a smaller one. A class left short (e.g. by skipped unreadable images) is refused naming the side."""
    try:
        positions = stratified_positions(images.labels.numpy(), images.classes, per_class=per_class, seed=seed)
    except SynthgapError as exc:
        raise SynthgapError(f"exchange_rate, {side} side: {exc}") from None
    return images.select(positions)


def execute(run: ExchangeRun, ctx: RunContext) -> ExchangeRateRecord:
    """One student of the exchange-rate experiment on a rung of its side (plus all synthetic images when mixed)."""
    start = time.perf_counter()
    full = ctx.store.train(run.side)
    train = rung_subset(full, run.per_class, run.seed, run.side)
    real_images = len(train) if run.side == "real" else 0
    synthetic_images = len(train) if run.side == "synthetic" else 0
    reference = len(full)  # the set whose steps same_steps keeps
    if run.mixed:
        synthetic = ctx.store.train("synthetic")
        train = concat_images([train, synthetic])
        synthetic_images = len(synthetic)
        # the mix extends the synthetic set, so it keeps that set's steps: a gain over the synthetic curve is then
        # the real images', not more optimisation's
        reference = len(synthetic)
    recipe = ctx.spec.recipe
    if run.schedule == "same_steps":
        recipe = same_steps_recipe(recipe, same_steps_epochs(recipe, reference, len(train)))
    if not run.mixed and len(train) == len(full):  # the side's whole set: the baseline's student, cached
        evaluation = scratch_student(ctx, run, train, recipe).evaluation
    else:
        _, result = train_in_run(ctx, run, train, recipe, **resume_state(ctx, run))
        evaluation = result.evaluation
    target = f"{ctx.spec.data.real}+{ctx.spec.data.synthetic}" if run.mixed else None
    return ExchangeRateRecord(
        **ctx.record_fields(run, run.arm, target=target),
        per_class=run.per_class,
        real_images=real_images,
        synthetic_images=synthetic_images,
        train_images=len(train),
        epochs=recipe.epochs,
        schedule=run.schedule,
        seconds=time.perf_counter() - start,
        skipped_images=len(full.skipped),
        **evaluation_fields(evaluation),
    )


KIND = Kind("exchange_rate", ExchangeRateBlock, plan, (ExchangeRun,), execute, records=(ExchangeRateRecord,))
