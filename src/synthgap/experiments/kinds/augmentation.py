"""Augmentation ablation: from-scratch students of each side under one augmentation preset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from synthgap.experiments.results import AugmentationRecord
from synthgap.experiments.runs import DataUse, Kind, Run, RunContext
from synthgap.experiments.spec import AugmentationBlock, ExperimentSpec, Side
from synthgap.experiments.students import scratch_fields, scratch_student


@dataclass(frozen=True)
class AugmentationRun(Run):
    side: Side = "real"
    preset: str = "standard"
    kind: ClassVar[str] = "ablation"
    ablation: ClassVar[str] = "augmentation"

    def data_used(self, spec: ExperimentSpec) -> dict[str, DataUse]:
        return {"train": DataUse(spec.data.ref(self.side))}


def plan(block: AugmentationBlock, seeds: list[int], spec: ExperimentSpec) -> list[AugmentationRun]:
    return [
        AugmentationRun(f"ablation-augmentation-{side}-{preset}-s{seed}", seed, side, preset)
        for seed in seeds
        for side in block.sides
        for preset in block.presets
    ]


def execute(run: AugmentationRun, ctx: RunContext) -> AugmentationRecord:
    recipe = ctx.spec.recipe.model_copy(update={"augmentation": run.preset})
    train = ctx.store.train(run.side)
    student = scratch_student(ctx, run, train, recipe)
    return AugmentationRecord(
        **ctx.record_fields(run, run.side),
        **scratch_fields(student, train, recipe),
        variant=run.preset,
        augmentation=run.preset,
    )


KIND = Kind("augmentation", AugmentationBlock, plan, (AugmentationRun,), execute)
