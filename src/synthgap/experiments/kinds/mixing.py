"""Mixing ablation: real and synthetic images in one training set, and synthetic pretraining followed by full
fine-tuning on the real images."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from pydantic import Field, field_validator

from synthgap.data.subsets import stratified_positions
from synthgap.data.tensors import ImageTensors, concat_images
from synthgap.experiments.blocks import Strict, all_valid
from synthgap.experiments.results import AblationRecord
from synthgap.experiments.runs import BaselineRun, DataUse, Kind, Run, RunContext, baseline
from synthgap.experiments.students import evaluation_fields, scratch_fields, scratch_student, train_from_source
from synthgap.experiments.transfer import TransferSetup

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings


class MixingRecord(AblationRecord):
    ablation: Literal["mixing"] = "mixing"
    mixing: str = ""  # share | added | pretrain_finetune
    synthetic_share: float | None = None
    added_synthetic: float | None = None
    real_images: int | None = None
    synthetic_images: int | None = None


class MixingBlock(Strict):
    """Real and synthetic images in one training set, and synthetic pretraining followed by full fine-tuning.

    synthetic_shares: sets of `per_class` images per class, this share of them synthetic (0: R, 1: S);
    added_synthetic: all real images plus this many synthetic images per real image;
    pretrain_finetune: the synthetic baseline with all layers fine-tuned on the real images."""

    kind: Literal["mixing"]
    synthetic_shares: list[float] = [0.25, 0.5, 0.75]
    added_synthetic: list[float] = []
    pretrain_finetune: bool = True
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("synthetic_shares")
    @classmethod
    def _shares_in_range(cls, values: list[float]) -> list[float]:
        return all_valid(values, lambda v: 0 <= v <= 1, "synthetic shares must be in [0, 1]")

    @field_validator("added_synthetic")
    @classmethod
    def _ratios_positive(cls, values: list[float]) -> list[float]:
        return all_valid(values, lambda v: v > 0, "added synthetic ratios must be positive")


@dataclass(frozen=True)
class MixingRun(Run):
    mode: str = "share"  # share | added | pretrain_finetune
    synthetic_share: float | None = None  # share: synthetic share of a per_class-sized set
    added_synthetic: float | None = None  # added: synthetic images per real image on top of all real ones
    kind: ClassVar[str] = "ablation"
    ablation: ClassVar[str] = "mixing"

    def needs(self) -> tuple[BaselineRun, ...]:
        return (baseline("synthetic", self.seed),) if self.mode == "pretrain_finetune" else ()

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        used = {"train": DataUse(spec.data.real), "synthetic": DataUse(spec.data.synthetic)}
        if self.mode == "added":
            used["synthetic"] = DataUse(spec.data.synthetic, all_images=True)
        return used

    @property
    def variant(self) -> str:
        if self.mode == "share":
            return f"share{self.synthetic_share:g}"
        return f"add{self.added_synthetic:g}" if self.mode == "added" else self.mode


def plan(block: MixingBlock, seeds: list[int], spec: Settings) -> list[MixingRun]:
    runs = []
    for seed in seeds:
        for share in block.synthetic_shares:
            runs.append(MixingRun(f"ablation-mixing-share{share:g}-s{seed}", seed, "share", synthetic_share=share))
        for ratio in block.added_synthetic:
            runs.append(MixingRun(f"ablation-mixing-add{ratio:g}-s{seed}", seed, "added", added_synthetic=ratio))
        if block.pretrain_finetune:  # the synthetic baseline, every layer fine-tuned on the real images
            runs.append(MixingRun(f"ablation-mixing-pretrain_finetune-s{seed}", seed, "pretrain_finetune"))
    return runs


def mixed_training_set(run: MixingRun, ctx: RunContext) -> tuple[ImageTensors, int, int]:
    """The training images of a mixing run and how many of them are real and synthetic.

    share s: per class, round(s·m) synthetic and m − round(s·m) real images, m = real images per class, so the
    set's size does not change with s; added r: all real images plus round(r·m) synthetic ones per class."""
    spec, store = ctx.spec, ctx.store
    real = store.train("real")
    m = int(torch.bincount(real.labels).min())

    def subset(images: ImageTensors, k: int) -> ImageTensors:  # nested, stratified, seeded like every subset
        return images.select(
            stratified_positions(images.labels.numpy(), images.classes, per_class=k, seed=spec.data.subset_seed)
        )

    if run.mode == "share":
        synthetic_k = round(run.synthetic_share * m)
        parts = [(subset(real, m - synthetic_k), "real")] if synthetic_k < m else []
        if synthetic_k:
            parts.append((subset(store.train("synthetic"), synthetic_k), "synthetic"))
    else:
        everything = store.train_ref(spec.data.synthetic, all_images=True)
        parts = [(real, "real"), (subset(everything, round(run.added_synthetic * m)), "synthetic")]

    def count(side: str) -> int:
        return sum(len(images) for images, s in parts if s == side)

    return concat_images([images for images, _ in parts]), count("real"), count("synthetic")


def execute(run: MixingRun, ctx: RunContext) -> MixingRecord:
    common = {
        "variant": run.variant,
        "mixing": run.mode,
        "synthetic_share": run.synthetic_share,
        "added_synthetic": run.added_synthetic,
    }
    if run.mode == "pretrain_finetune":  # synthetic pretraining, then every layer fine-tuned on the real images
        start = time.perf_counter()
        recipe = ctx.stage2_recipe(None, None)
        train = ctx.store.train("real")
        synthetic = ctx.store.train("synthetic")
        (source,) = run.needs()
        setup = TransferSetup(n=ctx.num_layers, freeze=False, rest="finetune")
        _, result = train_from_source(ctx, run, source, synthetic, setup, train, recipe)
        return MixingRecord(
            **ctx.record_fields(run, "real"),
            **common,
            **ctx.transfer_fields("synthetic", ctx.num_layers, False),
            epochs=recipe.epochs,
            train_images=len(train),
            seconds=time.perf_counter() - start,
            real_images=len(train),
            synthetic_images=len(synthetic),
            **evaluation_fields(result.fit.evaluation),
        )
    train, real_images, synthetic_images = mixed_training_set(run, ctx)
    target = f"{ctx.spec.data.real}+{ctx.spec.data.synthetic}"
    student = scratch_student(ctx, run, train, ctx.spec.recipe)
    return MixingRecord(
        **ctx.record_fields(run, "real", target=target),
        **common,
        **scratch_fields(student, train, ctx.spec.recipe),
        real_images=real_images,
        synthetic_images=synthetic_images,
    )


KIND = Kind("mixing", MixingBlock, plan, (MixingRun,), execute, records=(MixingRecord,))
