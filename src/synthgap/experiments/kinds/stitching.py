"""Model stitching: are the synthetic-trained student's early features worse than the real-trained one's, or only
different? For each cut N, the S baseline's layers 1..N → a trained stitch → the R baseline's layers N+1..L (both
frozen; the stitch trained on the real training images, tested on the real test set). Two controls measure what
stitching itself costs: R's own layers 1..N (the self-stitch) and those of the R baseline of the next seed (another
network trained on the same data). The report compares the penalties with the layer sweep's recovered shares.

A kind, not an analysis of finished runs: every stitch is a trained student with its own record, fingerprint,
resume and backends like any other run, and it needs baselines the runner may still have to train.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from synthgap.experiments.blocks import Side, Strict, all_valid, check_layers
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runs import BaselineRun, DataUse, Kind, Run, RunContext, baseline
from synthgap.experiments.students import evaluation_fields, resume_state, source_model
from synthgap.experiments.transfer import train_stitch
from synthgap.train.loop import seed_everything

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings
    from synthgap.models import ModelFamily

Giver = Literal["synthetic", "real", "real_other"]
GIVERS: tuple[str, ...] = ("synthetic", "real", "real_other")
GIVER_SIDES: dict[str, Side] = {"synthetic": "synthetic", "real": "real", "real_other": "real"}
OTHER_SEED_OFFSET = 1  # the "real_other" control's layers 1..N come from the R baseline of seed + 1


class StitchingBlock(Strict):
    """Stitched students at every cut in `n`: layers 1..N of each model in `givers` (the S baseline; R itself; the R
    baseline of the next seed) joined to R's layers N+1..L by a stitch trained for `epochs` on the real images."""

    kind: Literal["stitching"]
    n: list[int] | None = None  # cuts (default 1..L-1 of the model family)
    givers: list[Giver] = ["synthetic", "real", "real_other"]
    epochs: int = Field(4, ge=1)  # the stitch's training epochs (the recipe's otherwise, without augmentation)
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("n")
    @classmethod
    def _n_positive(cls, values: list[int] | None) -> list[int] | None:
        if values is not None and not values:
            raise ValueError("n must name at least one cut (leave it out for every cut)")
        return None if values is None else all_valid(values, lambda v: v >= 1, "a stitch needs N >= 1")

    @field_validator("givers")
    @classmethod
    def _givers_once(cls, values: list[str]) -> list[str]:
        if not values or len(set(values)) != len(values):
            raise ValueError(
                f"givers must name each of {', '.join(GIVERS)} at most once, and at least one, got {values}"
            )
        return values


@dataclass(frozen=True)
class StitchRun(Run):
    """`giver`'s layers 1..n → a stitch → the R baseline's layers n+1..L of the same seed."""

    giver: str = "synthetic"
    n: int = 1
    epochs: int = 4
    kind: ClassVar[str] = "stitching"

    def trains_a_suffix(self, spec: Settings) -> bool:
        return True  # the stitch, before the receiver's frozen suffix, on cached or live prefix outputs alike

    @property
    def giver_seed(self) -> int:
        return self.seed + OTHER_SEED_OFFSET if self.giver == "real_other" else self.seed

    @property
    def giver_baseline(self) -> BaselineRun:
        return baseline(GIVER_SIDES[self.giver], self.giver_seed)

    def needs(self) -> tuple[BaselineRun, ...]:
        receiver = baseline("real", self.seed)
        return (receiver,) if self.giver == "real" else (receiver, self.giver_baseline)

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        return {"source": DataUse(spec.data.ref(GIVER_SIDES[self.giver])), "train": DataUse(spec.data.real)}


class StitchRecord(ResultRecord):
    """One stitched student: `source_side` trained layers 1..n_transferred (`giver`: synthetic, real — the
    receiver itself — or real_other, the R of `giver_seed`), R of `seed` the rest; `top1` after the stitch trained,
    `start_top1` at its least-squares start."""

    kind: Literal["stitching"] = "stitching"
    giver: str = "synthetic"
    giver_seed: int = 0
    start_top1: float | None = None
    stitch_parameters: int = 0
    prefix_cache: bool | None = None  # the giver's prefix outputs computed once (else in every step: memory limit)


def run_name(giver: str, n: int, seed: int, epochs: int) -> str:
    return f"stitch-{giver}-n{n:02d}-s{seed}-e{epochs}"


def plan(block: StitchingBlock, seeds: list[int], spec: Settings) -> list[StitchRun]:
    return [
        StitchRun(run_name(giver, n, seed, block.epochs), seed, giver, n, block.epochs)
        for seed in seeds
        for n in block.n
        for giver in block.givers
    ]


def execute(run: StitchRun, ctx: RunContext) -> StitchRecord:
    start = time.perf_counter()
    real = ctx.store.train("real")
    receiver = source_model(ctx, baseline("real", run.seed), real)
    giver_run = run.giver_baseline
    giver = receiver if run.giver == "real" else source_model(ctx, giver_run, ctx.store.train(giver_run.side))
    recipe = ctx.stage2_recipe("none", run.epochs)
    seed_everything(run.seed)
    result = train_stitch(
        giver,
        receiver,
        run.n,
        ctx.family,
        real,
        ctx.store.test(),
        recipe,
        seed=run.seed,
        device=ctx.device,
        out_dir=ctx.run_dir(run),
        progress=ctx.progress,
        desc=run.name,
        resident=ctx.spec.data.resident,
        gpu_share=ctx.gpu_share,
        **resume_state(ctx, run),
    )
    return StitchRecord(
        **ctx.record_fields(run, "real"),
        **ctx.transfer_fields(giver_run.side, run.n, True),
        giver=run.giver,
        giver_seed=run.giver_seed,
        start_top1=result.start.top1,
        stitch_parameters=result.parameters,
        prefix_cache=result.prefix_cache,
        epochs=recipe.epochs,
        train_images=result.fit.train_images,
        seconds=time.perf_counter() - start,
        skipped_images=len(real.skipped),
        **evaluation_fields(result.fit.evaluation),
    )


def check(block: StitchingBlock, spec: Settings, family: ModelFamily) -> None:
    """Cuts default to 1..L-1 of the family; each must lie inside it, and the family must have a cut to stitch at."""
    last = family.num_layers
    if not family.has_cut():
        raise ValueError(f"stitching needs a model family with a prefix cut; {family.name} has none")
    block.n = list(range(1, last)) if block.n is None else block.n
    check_layers(block.n, 1, last - 1, f"stitching n ({family.name} has {last} layers; a stitch needs a layer after)")


KIND = Kind("stitching", StitchingBlock, plan, (StitchRun,), execute, records=(StitchRecord,), check=check)
