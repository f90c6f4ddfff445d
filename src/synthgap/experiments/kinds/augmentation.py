"""Augmentation ablation: from-scratch students of each side under one augmentation preset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from synthgap.data.transforms import AUGMENTATIONS
from synthgap.experiments.blocks import Side, Strict
from synthgap.experiments.results import AblationRecord
from synthgap.experiments.runs import DataUse, Kind, Run, RunContext
from synthgap.experiments.students import scratch_fields, scratch_student

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings


class AugmentationRecord(AblationRecord):
    ablation: Literal["augmentation"] = "augmentation"
    augmentation: str | None = None
    model_key: str | None = None


class AugmentationBlock(Strict):
    """Students trained from scratch on each side with each augmentation preset."""

    kind: Literal["augmentation"]
    presets: list[str] = ["none", "standard", "randaugment", "trivialaugment", "autoaugment", "augmix"]
    sides: list[Side] = ["real", "synthetic"]
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("presets")
    @classmethod
    def _known_presets(cls, values: list[str]) -> list[str]:
        for name in values:
            AUGMENTATIONS.get(name)  # unknown names fail here with the list of known ones
        return values


@dataclass(frozen=True)
class AugmentationRun(Run):
    side: Side = "real"
    preset: str = "standard"
    kind: ClassVar[str] = "ablation"
    ablation: ClassVar[str] = "augmentation"

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        return {"train": DataUse(spec.data.ref(self.side))}


def plan(block: AugmentationBlock, seeds: list[int], spec: Settings) -> list[AugmentationRun]:
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


KIND = Kind("augmentation", AugmentationBlock, plan, (AugmentationRun,), execute, records=(AugmentationRecord,))
