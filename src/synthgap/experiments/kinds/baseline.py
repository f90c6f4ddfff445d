"""Baselines: R and S, students trained from scratch on the real and on the synthetic side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from synthgap.experiments.blocks import Side, Strict
from synthgap.experiments.results import BaselineRecord
from synthgap.experiments.runs import BaselineRun, Kind, RunContext, baseline
from synthgap.experiments.students import scratch_fields, scratch_student

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings


class BaselineBlock(Strict):
    kind: Literal["baseline"]
    sides: list[Side] = ["real", "synthetic"]
    seeds: list[int] | None = Field(None, min_length=1)  # default: the spec's seeds


def plan(block: BaselineBlock, seeds: list[int], spec: Settings) -> list[BaselineRun]:
    return [baseline(side, seed) for seed in seeds for side in block.sides]


def execute(run: BaselineRun, ctx: RunContext) -> BaselineRecord:
    """Train (or reuse from the model cache) a student from scratch on one side, and test it."""
    train = ctx.store.train(run.side)
    student = scratch_student(ctx, run, train, ctx.spec.recipe)
    return BaselineRecord(
        **ctx.record_fields(run, run.side),
        **scratch_fields(student, train, ctx.spec.recipe, confusion=True),
        reused_model=student.reused,
        augmentation=ctx.spec.recipe.augmentation,
        recipe=ctx.spec.recipe.model_dump(mode="json"),
    )


KIND = Kind("baseline", BaselineBlock, plan, (BaselineRun,), execute, records=(BaselineRecord,))
