"""Expand a spec into runs: plain data, named by their settings, baselines before the transfers that need them."""

from __future__ import annotations

from dataclasses import dataclass

from synthgap.errors import SynthgapError
from synthgap.experiments.spec import (
    DIRECTIONS,
    BaselineBlock,
    DataReductionBlock,
    ExperimentSpec,
    LayerTransferBlock,
    Side,
)


@dataclass(frozen=True)
class Run:
    name: str
    kind: str  # "baseline" | "layer_transfer"
    seed: int
    target: Side  # side that trains the (rest of the) student
    source: Side | None = None  # side whose model gives layers 1..n
    n: int = 0
    freeze: bool = False
    rest: str = "reinit"
    frozen_bn: str = "eval"
    augmentation: str | None = None  # None: the recipe's
    epochs: int | None = None  # None: the recipe's
    arm: str | None = None  # data reduction: transfer | transfer_finetune | scratch | full_finetune
    fraction: float = 1.0  # data reduction: share of the target side's training images
    schedule: str = "same_epochs"  # data reduction: same_steps | same_epochs

    @property
    def needs(self) -> str | None:
        """The baseline run whose model this run starts from."""
        return baseline_name(self.source, self.seed) if self.source else None


def baseline_name(side: Side, seed: int) -> str:
    return f"baseline-{side}-s{seed}"


def transfer_name(block: LayerTransferBlock, direction: str, n: int, seed: int, spec: ExperimentSpec) -> str:
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


def plan(spec: ExperimentSpec) -> list[Run]:
    """Every run of the spec once: baselines (including those a transfer needs as its source) first."""
    baselines: list[Run] = []
    transfers: list[Run] = []
    for block in spec.experiments:
        seeds = block.seeds if block.seeds is not None else spec.seeds
        if isinstance(block, BaselineBlock):
            baselines += [Run(baseline_name(side, s), "baseline", s, side) for s in seeds for side in block.sides]
        elif isinstance(block, DataReductionBlock):
            transfers += _reduction_runs(block, seeds, spec)
        else:
            transfers += _transfer_runs(block, seeds, spec)
    needed = [Run(baseline_name(r.source, r.seed), "baseline", r.seed, r.source) for r in transfers if r.source]
    return _unique(baselines + needed + transfers)


def _transfer_runs(block: LayerTransferBlock, seeds: list[int], spec: ExperimentSpec) -> list[Run]:
    runs = []
    for seed in seeds:
        for direction in block.directions:
            source, target = DIRECTIONS[direction]
            for n in block.n:
                runs.append(
                    Run(
                        name=transfer_name(block, direction, n, seed, spec),
                        kind="layer_transfer",
                        seed=seed,
                        target=target,
                        source=source,
                        n=n,
                        freeze=block.freeze,
                        rest=block.rest,
                        frozen_bn=block.frozen_bn,
                        augmentation=block.augmentation,
                        epochs=block.epochs,
                    )
                )
    return runs


REDUCTION_SETUPS = {  # arm → (source side, layers copied (None: k), frozen, rest)
    "transfer": ("synthetic", None, True, "reinit"),
    "transfer_finetune": ("synthetic", None, True, "finetune"),
    "scratch": (None, 0, False, "reinit"),
    "full_finetune": ("synthetic", 18, False, "finetune"),
}


def divisor_label(fraction: float) -> str:
    """1/8 → "x8"; fractions that are not 1/integer keep three significant digits: 0.3 → "x3.33"."""
    return f"x{round(1 / fraction, 2):g}"


def _reduction_runs(block: DataReductionBlock, seeds: list[int], spec: ExperimentSpec) -> list[Run]:
    runs = []
    for seed in seeds:
        for arm in block.arms:
            source, copied, frozen, rest = REDUCTION_SETUPS[arm]
            for fraction in block.fractions:
                layers = f"-k{block.k}" if copied is None else ""  # k matters only to the transfer arms
                name = f"reduction-{arm}{layers}-{divisor_label(fraction)}-s{seed}-{block.schedule}"
                augmentation = block.augmentation if source else None  # scratch trains with the recipe's
                if augmentation is not None and augmentation != spec.recipe.augmentation:
                    name += f"-aug_{augmentation}"
                if block.epochs is not None and block.epochs != spec.recipe.epochs:
                    name += f"-e{block.epochs}"
                runs.append(
                    Run(
                        name=name,
                        kind="data_reduction",
                        seed=seed,
                        target="real",
                        source=source,
                        n=block.k if copied is None else copied,
                        freeze=frozen,
                        rest=rest,
                        augmentation=block.augmentation if arm != "scratch" else None,
                        epochs=block.epochs,
                        arm=arm,
                        fraction=fraction,
                        schedule=block.schedule,
                    )  # fmt: skip
                )
    return runs


def _unique(runs: list[Run]) -> list[Run]:
    seen: dict[str, Run] = {}
    for run in runs:
        if run.name in seen and seen[run.name] != run:
            raise SynthgapError(f"two different runs would both be named {run.name!r}")
        seen.setdefault(run.name, run)
    return list(seen.values())
