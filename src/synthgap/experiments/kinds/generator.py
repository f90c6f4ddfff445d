"""Generator ablation: from-scratch students of different synthetic sources, tested on the real test set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from synthgap.experiments.results import GeneratorRecord
from synthgap.experiments.runs import DataUse, Kind, Run, RunContext
from synthgap.experiments.spec import ExperimentSpec, GeneratorBlock
from synthgap.experiments.students import scratch_fields, scratch_student


@dataclass(frozen=True)
class GeneratorRun(Run):
    label: str = ""  # the spec's name for the source
    ref: str = ""  # its data reference
    kind: ClassVar[str] = "ablation"
    ablation: ClassVar[str] = "generator"

    def data_used(self, spec: ExperimentSpec) -> dict[str, DataUse]:
        return {"train": DataUse(self.ref)}


def plan(block: GeneratorBlock, seeds: list[int], spec: ExperimentSpec) -> list[GeneratorRun]:
    return [
        GeneratorRun(f"ablation-generator-{label}-s{seed}", seed, label, ref)
        for seed in seeds
        for label, ref in block.sources.items()
    ]


def execute(run: GeneratorRun, ctx: RunContext) -> GeneratorRecord:
    train = ctx.store.train_ref(run.ref)
    student = scratch_student(ctx, run, train, ctx.spec.recipe)
    return GeneratorRecord(
        **ctx.record_fields(run, "synthetic", target=run.ref),
        **scratch_fields(student, train, ctx.spec.recipe),
        variant=run.label,
        label=run.label,
    )


KIND = Kind("generator", GeneratorBlock, plan, (GeneratorRun,), execute)
