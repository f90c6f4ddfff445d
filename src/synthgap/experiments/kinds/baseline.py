"""Baselines: R and S, students trained from scratch on the real and on the synthetic side."""

from __future__ import annotations

from synthgap.experiments.results import BaselineRecord
from synthgap.experiments.runs import BaselineRun, Kind, RunContext, baseline
from synthgap.experiments.spec import BaselineBlock, ExperimentSpec
from synthgap.experiments.students import scratch_fields, scratch_student


def plan(block: BaselineBlock, seeds: list[int], spec: ExperimentSpec) -> list[BaselineRun]:
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
    )


KIND = Kind("baseline", BaselineBlock, plan, (BaselineRun,), execute)
