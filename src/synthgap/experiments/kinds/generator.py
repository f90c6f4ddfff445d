"""Generator ablation: from-scratch students of different synthetic sources, tested on the real test set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from synthgap.data.sources import DataRef
from synthgap.experiments.blocks import Strict
from synthgap.experiments.results import AblationRecord
from synthgap.experiments.runs import DataUse, Kind, Run, RunContext
from synthgap.experiments.students import scratch_fields, scratch_student

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings


class GeneratorRecord(AblationRecord):
    ablation: Literal["generator"] = "generator"
    label: str = ""  # the spec's name for the synthetic source
    model_key: str | None = None


class GeneratorBlock(Strict):
    """Students trained from scratch on each synthetic source (label → data reference), tested on the real test set."""

    kind: Literal["generator"]
    sources: dict[str, str] = Field(min_length=1)
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("sources")
    @classmethod
    def _valid_refs(cls, values: dict[str, str]) -> dict[str, str]:
        for label, ref in values.items():
            if not label or not all(c.isalnum() or c in "-_." for c in label):
                raise ValueError(f"source label {label!r} must be letters, digits, '-', '_' or '.'")
            DataRef.parse(ref)
        return values


@dataclass(frozen=True)
class GeneratorRun(Run):
    label: str = ""  # the spec's name for the source
    ref: str = ""  # its data reference
    kind: ClassVar[str] = "ablation"
    ablation: ClassVar[str] = "generator"

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        return {"train": DataUse(self.ref)}


def plan(block: GeneratorBlock, seeds: list[int], spec: Settings) -> list[GeneratorRun]:
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


KIND = Kind("generator", GeneratorBlock, plan, (GeneratorRun,), execute, records=(GeneratorRecord,))
