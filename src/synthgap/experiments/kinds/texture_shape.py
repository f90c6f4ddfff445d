"""Texture-vs-shape ablation: accuracy on cue-conflict variants of the real test set and a texture-reliance score,
for the baselines and for synthetic→real transfer students."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from synthgap.data.cues import CueVariants, texture_reliance
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import center_crop
from synthgap.experiments.blocks import Side, Strict, check_layers, not_negative
from synthgap.experiments.results import AblationRecord
from synthgap.experiments.runs import BaselineRun, DataUse, Kind, Run, RunContext, baseline, caches_a_prefix
from synthgap.experiments.students import ensure_scratch_model, evaluation_fields, scratch_student, train_from_source
from synthgap.experiments.transfer import TransferSetup
from synthgap.train.loaders import eval_loader
from synthgap.train.loop import evaluate
from synthgap.train.recipe import TrainRecipe

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings
    from synthgap.models import ModelFamily


class TextureRecord(AblationRecord):
    ablation: Literal["texture_shape"] = "texture_shape"
    student: str = ""  # real | synthetic (a baseline) | synthetic_to_real (a transfer student with n_transferred)
    cue_top1: dict[str, float] = {}
    texture_reliance: float | None = None
    cue_sigma: float = 1.0
    cue_grid: int = 4


CUE_CHUNK = 2048  # test images turned into variants at a time: bounded memory at 224 px
TRANSFER_STUDENT = "synthetic_to_real"


class TextureShapeBlock(Strict):
    """Texture-vs-shape reliance of the baselines and of synthetic→real transfer students (layers 1..n frozen)."""

    kind: Literal["texture_shape"]
    sides: list[Side] = ["real", "synthetic"]
    transfer_n: list[int] | None = None  # default: [L-2]
    blur_sigma: float = Field(1.0, gt=0)
    grid: int = Field(4, ge=2)
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("transfer_n")
    @classmethod
    def _n_not_negative(cls, values: list[int] | None) -> list[int] | None:
        return not_negative(values)


@dataclass(frozen=True)
class TextureRun(Run):
    student: str = "real"  # real | synthetic (that side's baseline) | synthetic_to_real (a transfer student)
    n: int = 0  # layers from the synthetic model (transfer student)
    cue_sigma: float = 1.0
    cue_grid: int = 4
    kind: ClassVar[str] = "ablation"
    ablation: ClassVar[str] = "texture_shape"

    @property
    def side(self) -> str:
        return "real" if self.student == TRANSFER_STUDENT else self.student

    def trains_a_suffix(self, spec: Settings) -> bool:
        return self.student == TRANSFER_STUDENT and caches_a_prefix(self.n, "none", spec)  # stage 2 never augments

    def needs(self) -> tuple[BaselineRun, ...]:
        return (baseline("synthetic", self.seed),) if self.student == TRANSFER_STUDENT else ()

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        used = {"train": DataUse(spec.data.ref(self.side))}
        if self.student == TRANSFER_STUDENT:
            used["source"] = DataUse(spec.data.synthetic)
        return used

    @property
    def variant(self) -> str:
        return f"{self.student}-n{self.n}" if self.student == TRANSFER_STUDENT else self.student


def plan(block: TextureShapeBlock, seeds: list[int], spec: Settings) -> list[TextureRun]:
    settings = "" if (block.blur_sigma, block.grid) == (1.0, 4) else f"-sigma{block.blur_sigma:g}-grid{block.grid}"
    cues = {"cue_sigma": block.blur_sigma, "cue_grid": block.grid}
    runs = []
    for seed in seeds:
        for side in block.sides:
            runs.append(TextureRun(f"ablation-texture-{side}-s{seed}{settings}", seed, side, **cues))
        for n in block.transfer_n:  # a synthetic→real transfer student, as in the layer sweep (frozen, no aug)
            name = f"ablation-texture-{TRANSFER_STUDENT}-n{n:02d}-s{seed}{settings}"
            runs.append(TextureRun(name, seed, TRANSFER_STUDENT, n, **cues))
    return runs


def cue_accuracies(model: nn.Module, test: ImageTensors, recipe: TrainRecipe, variants: CueVariants) -> dict:
    """Top-1 (%) of `model` on each cue variant of the test images, made chunk by chunk from one seeded generator,
    so every student sees the same variants, whatever the chunk size."""
    generator = torch.Generator().manual_seed(variants.seed)
    correct: dict[str, float] = {}
    for start in range(0, len(test), CUE_CHUNK):
        labels = test.labels[start : start + CUE_CHUNK]
        chunk = center_crop(test.gather(slice(start, start + CUE_CHUNK)), test.resolution)  # the test view
        chunk_variants = variants.apply(chunk, generator)
        for name, images in chunk_variants.items():
            loader = eval_loader(ImageTensors(images, labels, test.classes), recipe)
            top1, _ = evaluate(model, loader, precision=recipe.precision, tta=recipe.tta)
            correct[name] = correct.get(name, 0.0) + top1 * len(labels)
    return {name: round(total / len(test), 2) for name, total in correct.items()}


def execute(run: TextureRun, ctx: RunContext) -> TextureRecord:
    start = time.perf_counter()
    test = ctx.store.test()
    train = ctx.store.train(run.side)
    if run.student != TRANSFER_STUDENT:  # a baseline student, from the model cache (trained now if not yet)
        recipe = ctx.spec.recipe
        student = scratch_student(ctx, run, train, recipe)
        key, _ = ensure_scratch_model(ctx, run, train, recipe)
        model, _ = ctx.models.load(key, ctx.model_config(len(test.classes)))
        model.to(ctx.device)
        evaluation = student.evaluation
    else:  # a transfer student, trained as in the layer sweep
        recipe = ctx.stage2_recipe("none", None)
        (source,) = run.needs()
        setup = TransferSetup(n=run.n, freeze=True)
        model, result = train_from_source(ctx, run, source, ctx.store.train("synthetic"), setup, train, recipe)
        evaluation = result.fit.evaluation
    accuracy = cue_accuracies(model, test, recipe, CueVariants(blur_sigma=run.cue_sigma, grid=run.cue_grid))
    reliance = texture_reliance(accuracy, len(test.classes))
    return TextureRecord(
        **ctx.record_fields(run, run.side),
        **ctx.transfer_fields(
            "synthetic" if run.student == TRANSFER_STUDENT else None, run.n, run.student == TRANSFER_STUDENT
        ),
        epochs=recipe.epochs,
        train_images=len(train),
        seconds=time.perf_counter() - start,
        variant=run.variant,
        student=run.student,
        cue_top1=accuracy,
        texture_reliance=None if math.isnan(reliance) else round(reliance, 4),
        cue_sigma=run.cue_sigma,
        cue_grid=run.cue_grid,
        **evaluation_fields(evaluation),
    )


def check(block: TextureShapeBlock, spec: Settings, family: ModelFamily) -> None:
    """The patch grid must tile the test images; transfer students' N must fit the family (default: L-2)."""
    if spec.data.resolution % block.grid:
        raise ValueError(f"texture_shape grid {block.grid} does not divide the resolution {spec.data.resolution}")
    last = family.num_layers
    block.transfer_n = [last - 2] if block.transfer_n is None else block.transfer_n
    check_layers(block.transfer_n, 0, last, f"texture_shape transfer_n ({family.name} has {last} layers)")


KIND = Kind("texture_shape", TextureShapeBlock, plan, (TextureRun,), execute, records=(TextureRecord,), check=check)
