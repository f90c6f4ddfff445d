"""Layer-wise transfer (the paper's Figure 2): layers 1..N from one side's baseline, the rest trained on the other."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from synthgap.experiments.results import TransferRecord
from synthgap.experiments.runs import BaselineRun, DataUse, Kind, Run, RunContext, baseline
from synthgap.experiments.spec import DIRECTIONS, ExperimentSpec, LayerTransferBlock, Side
from synthgap.experiments.students import train_from_source
from synthgap.experiments.transfer import TransferSetup


@dataclass(frozen=True)
class TransferRun(Run):
    source: Side = "synthetic"  # side whose baseline gives layers 1..n
    target: Side = "real"  # side that trains the rest
    n: int = 0
    freeze: bool = True
    rest: str = "reinit"
    frozen_bn: str = "eval"
    augmentation: str | None = None  # stage-2 augmentation; None: the recipe's
    epochs: int | None = None  # stage-2 epochs; None: the recipe's
    kind: ClassVar[str] = "layer_transfer"

    def needs(self) -> tuple[BaselineRun, ...]:
        return (baseline(self.source, self.seed),)

    def data_used(self, spec: ExperimentSpec) -> dict[str, DataUse]:
        return {"source": DataUse(spec.data.ref(self.source)), "train": DataUse(spec.data.ref(self.target))}

    @property
    def setup(self) -> TransferSetup:
        return TransferSetup(n=self.n, freeze=self.freeze, rest=self.rest, frozen_bn=self.frozen_bn)


def run_name(block: LayerTransferBlock, direction: str, n: int, seed: int, spec: ExperimentSpec) -> str:
    """Run names encode every setting that can differ between blocks, so different runs never share a name."""
    name = f"transfer-{direction}-n{n:02d}-s{seed}"
    if not block.freeze:
        name += "-unfrozen"
    if block.rest != "reinit":
        name += f"-{block.rest}"
    if block.frozen_bn != "eval":
        name += f"-bn_{block.frozen_bn}"
    if block.augmentation is not None and block.augmentation != spec.recipe.augmentation:
        name += f"-aug_{block.augmentation}"
    if block.epochs is not None and block.epochs != spec.recipe.epochs:
        name += f"-e{block.epochs}"
    return name


def plan(block: LayerTransferBlock, seeds: list[int], spec: ExperimentSpec) -> list[TransferRun]:
    runs = []
    for seed in seeds:
        for direction in block.directions:
            source, target = DIRECTIONS[direction]
            for n in block.n:
                runs.append(
                    TransferRun(
                        run_name(block, direction, n, seed, spec),
                        seed,
                        source,
                        target,
                        n,
                        block.freeze,
                        block.rest,
                        block.frozen_bn,
                        block.augmentation,
                        block.epochs,
                    )
                )
    return runs


def execute(run: TransferRun, ctx: RunContext) -> TransferRecord:
    """Layers 1..N from the source side's baseline model, the rest trained on the target side."""
    start = time.perf_counter()
    recipe = ctx.stage2_recipe(run.augmentation, run.epochs)
    train = ctx.store.train(run.target)
    (source,) = run.needs()
    _, result = train_from_source(ctx, run, source, ctx.store.train(run.source), run.setup, train, recipe)
    return TransferRecord(
        **ctx.record_fields(run, run.target),
        source=ctx.spec.data.ref(run.source),
        source_side=run.source,
        n_transferred=run.n,
        frozen=run.freeze,
        epochs=recipe.epochs if run.n < ctx.num_layers else 0,
        top1=result.fit.top1,
        top5=result.fit.top5,
        train_images=result.fit.train_images,
        seconds=time.perf_counter() - start,
        rest=run.rest,
        frozen_bn=run.frozen_bn,
        augmentation=recipe.augmentation,
        prefix_cache=result.prefix_cache,
        prefix_cache_note=result.prefix_cache_note,
        skipped_images=len(train.skipped),
        **result.fit.evaluation.record_fields(),
    )


KIND = Kind("layer_transfer", LayerTransferBlock, plan, (TransferRun,), execute)
