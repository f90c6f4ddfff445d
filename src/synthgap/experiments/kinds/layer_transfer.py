"""Layer-wise transfer (the paper's Figure 2): layers 1..N from one side's baseline, the rest trained on the other."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from synthgap.experiments.blocks import DIRECTIONS, Direction, Side, Strict, all_valid, check_layers, known_preset
from synthgap.experiments.results import OTHER_SIDE, ResultRecord
from synthgap.experiments.runs import (
    BaselineRun,
    DataUse,
    Kind,
    NOption,
    Run,
    RunContext,
    baseline,
    baseline_name,
    caches_a_prefix,
)
from synthgap.experiments.students import evaluation_fields, train_from_source
from synthgap.experiments.transfer import TransferSetup
from synthgap.models import get_family

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings
    from synthgap.models import ModelFamily


class TransferRecord(ResultRecord):
    kind: Literal["layer_transfer"] = "layer_transfer"
    rest: str = "reinit"
    frozen_bn: str = "eval"
    augmentation: str | None = None
    prefix_cache: bool = False
    prefix_cache_note: str | None = None  # why frozen layers were not cached, when they could not be
    chosen: str | None = None  # an adaptive sweep's reason for this N

    @model_validator(mode="before")
    @classmethod
    def _old_line_source_side(cls, data: Any) -> Any:
        """A line written before `source_side` existed: layers 1..N came from the side opposite the one that trained
        the rest, so that is its source side."""
        if (
            isinstance(data, dict)
            and data.get("source")
            and "source_side" not in data
            and data.get("side") in OTHER_SIDE
        ):
            return {**data, "source_side": OTHER_SIDE[data["side"]]}
        return data


class LayerTransferBlock(Strict):
    kind: Literal["layer_transfer"]
    directions: list[Direction] = ["synthetic_to_real", "real_to_synthetic"]
    n: list[int] | Literal["auto"] | None = None  # default: 1..L-1 (L: the model family's number of layers)
    # n: auto — find by bisection over N where the share of the gap recovered, (top-1(N) − S) / (R − S), of the
    # synthetic→real students falls below each level, instead of training every N; at most `budget` students a seed
    levels: list[float] | None = None  # with n: auto (default [0.5]): shares of the gap R − S, each in (0, 1)
    budget: int | None = Field(None, ge=1)  # with n: auto: stage-2 students per seed at most (default: unlimited)
    seeds: list[int] | None = Field(None, min_length=1)
    freeze: bool = True  # layers 1..N frozen (else fine-tuned with the rest)
    rest: Literal["reinit", "finetune"] = "reinit"  # layers N+1..L: fresh, or kept from the source and fine-tuned
    frozen_bn: Literal["eval", "reestimate"] = "eval"  # frozen BatchNorm statistics: source's, or re-estimated
    augmentation: str | None = None  # stage-2 augmentation (default: the recipe's); "none" enables the prefix cache
    epochs: int | None = Field(None, ge=1)  # stage-2 epochs (default: the recipe's)

    @field_validator("n")
    @classmethod
    def _n_not_negative(cls, values: list[int] | str | None) -> list[int] | str | None:
        if values is None or values == "auto":
            return values
        return all_valid(values, lambda v: v >= 0, "N must not be negative")

    @field_validator("levels")
    @classmethod
    def _levels_in_range(cls, values: list[float] | None) -> list[float] | None:
        return None if values is None else all_valid(values, lambda v: 0 < v < 1, "levels must be in (0, 1)")

    @field_validator("augmentation")
    @classmethod
    def _known_augmentation(cls, value: str | None) -> str | None:
        return known_preset(value)

    @model_validator(mode="after")
    def _adaptive_settings(self) -> LayerTransferBlock:
        if self.n == "auto":
            if self.directions != ["synthetic_to_real"]:
                raise ValueError("n: auto searches the synthetic→real students: set directions: [synthetic_to_real]")
            self.levels = self.levels or [0.5]
        elif self.levels is not None or self.budget is not None:
            raise ValueError("levels and budget go with n: auto")
        return self

    @property
    def adaptive(self) -> bool:
        return self.n == "auto"


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
    # Why an adaptive sweep chose this N (not a setting: the same student whatever led to it)
    chosen: str = field(default="", compare=False)
    kind: ClassVar[str] = "layer_transfer"

    def trains_a_suffix(self, spec: Settings) -> bool:
        return self.freeze and caches_a_prefix(self.n, self.augmentation or spec.recipe.augmentation, spec)

    def settings(self) -> dict:
        settings = super().settings()
        del settings["chosen"]
        return settings

    def needs(self) -> tuple[BaselineRun, ...]:
        return (baseline(self.source, self.seed),)

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        return {"source": DataUse(spec.data.ref(self.source)), "train": DataUse(spec.data.ref(self.target))}

    @property
    def setup(self) -> TransferSetup:
        return TransferSetup(n=self.n, freeze=self.freeze, rest=self.rest, frozen_bn=self.frozen_bn)


def run_name(block: LayerTransferBlock, direction: str, n: int, seed: int, spec: Settings) -> str:
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


def plan(block: LayerTransferBlock, seeds: list[int], spec: Settings) -> list[Run]:
    if block.adaptive:  # the students come one round at a time (follow_up); R and S come first
        return [baseline(side, seed) for seed in seeds for side in ("real", "synthetic")]
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
        **ctx.transfer_fields(run.source, run.n, run.freeze),
        epochs=recipe.epochs if run.n < ctx.num_layers else 0,
        train_images=result.fit.train_images,
        seconds=time.perf_counter() - start,
        rest=run.rest,
        frozen_bn=run.frozen_bn,
        augmentation=recipe.augmentation,
        prefix_cache=result.prefix_cache,
        prefix_cache_note=result.prefix_cache_note,
        chosen=run.chosen or None,
        skipped_images=len(train.skipped),
        **evaluation_fields(result.fit.evaluation),
    )


@dataclass(frozen=True)
class Bisection:
    """Where the synthetic→real curve crosses each level, as far as the measured students tell."""

    next_n: dict[int, str]  # N to train next → why
    crossings: dict[float, int | None]  # level → first N whose recovered share is below it (None: not found yet)


def bisect_levels(shares: dict[int, float], num_layers: int, levels: list[float], budget: int | None) -> Bisection:
    """Bisection over N for every level at once. `shares` holds the measured recovered shares by N; N = 0 counts as
    1 (R itself) and N = L as 0 (S, the source model unchanged), so the search interval is 0..L. Assumes the share
    falls with N, as the paper found; a level's crossing is the first N whose share is below it."""
    known = {0: 1.0, num_layers: 0.0, **shares}
    next_n: dict[int, str] = {}
    crossings: dict[float, int | None] = {}
    for level in sorted(levels, reverse=True):
        low, high = 0, num_layers  # share(low) >= level > share(high)
        while high - low > 1:
            middle = (low + high) // 2
            if middle not in known:
                next_n.setdefault(middle, f"bisection for {level:.0%} of the gap: crossing in N {low}..{high}")
                break
            low, high = (middle, high) if known[middle] >= level else (low, middle)
        crossings[level] = high if high - low <= 1 else None
    if budget is not None:
        room = max(0, budget - len(shares))
        next_n = dict(list(next_n.items())[:room])
    return Bisection(next_n, crossings)


def follow_up(
    block: LayerTransferBlock, seeds: list[int], spec: Settings, records: list[ResultRecord]
) -> list[TransferRun]:
    """An adaptive (n: auto) block's runs so far and the next round a bisection needs, given what is recorded.
    (The recorded ones are returned too, so a resumed experiment knows them; the runner skips them.)"""
    if not block.adaptive:
        return []  # a fixed list of N is planned up front
    num_layers = get_family(spec.model.name).num_layers
    by_name = {r.run: r for r in records}
    runs = []

    def student(n: int, seed: int, why: str) -> TransferRun:
        name = run_name(block, "synthetic_to_real", n, seed, spec)
        fields = (block.freeze, block.rest, block.frozen_bn, block.augmentation, block.epochs)
        return TransferRun(name, seed, "synthetic", "real", n, *fields, chosen=why)

    for seed in seeds:
        r, s = by_name.get(baseline_name("real", seed)), by_name.get(baseline_name("synthetic", seed))
        if r is None or s is None or r.top1 <= s.top1:
            continue  # the baselines are not recorded yet, or there is no gap to locate (the report says so)
        shares = {}
        for n in range(num_layers + 1):
            record = by_name.get(run_name(block, "synthetic_to_real", n, seed, spec))
            if record is not None and record.fingerprint:
                shares[n] = (record.top1 - s.top1) / (r.top1 - s.top1)
                runs.append(student(n, seed, getattr(record, "chosen", None) or ""))
        bisection = bisect_levels(shares, num_layers, block.levels, block.budget)
        runs += [student(n, seed, why) for n, why in bisection.next_n.items()]
    return runs


def adaptive_students_bound(levels: int, num_layers: int, budget: int | None) -> int:
    """At most this many students per seed for an adaptive sweep over N = 0..L (`num_layers` = L) with `levels`
    levels: bisecting 0..L takes ⌈log2 L⌉ students per level (fewer where levels share them), only N = 1..L−1 are
    ever trained (L − 1 students), and `budget` caps the rest."""
    per_level = (num_layers - 1).bit_length()  # ⌈log2 L⌉, exact in integers
    bound = min(levels * per_level, num_layers - 1)
    return bound if budget is None else min(bound, budget)


def later(block: LayerTransferBlock, seeds: list[int], spec: Settings) -> tuple[str, str] | None:
    """What an adaptive (n: auto) block may add to the planned runs: ("n: auto", a bound on its synthetic→real
    students)."""
    if not block.adaptive:
        return None
    num_layers = get_family(spec.model.name).num_layers
    per_seed = adaptive_students_bound(len(block.levels), num_layers, block.budget)
    steps = (num_layers - 1).bit_length()
    cap = "no budget" if block.budget is None else f"budget {block.budget}"
    return "n: auto", (
        f"at most {per_seed} synthetic→real students per seed, {per_seed * len(seeds)} in all "
        f"({len(seeds)} seed(s)) — an upper bound: {len(block.levels)} level(s) × ⌈log2 {num_layers}⌉ = {steps} "
        f"bisection steps, at most {num_layers - 1} values of N, {cap}; chosen round by round after the baselines, "
        "so not counted in runs above"
    )


def check(block: LayerTransferBlock, spec: Settings, family: ModelFamily) -> None:
    """N defaults to 1..L-1 of the family, and every fixed N must be one of its layers."""
    last = family.num_layers
    block.n = list(range(1, last)) if block.n is None else block.n
    if not block.adaptive:
        check_layers(block.n, 0, last, f"layer_transfer n ({family.name} has {last} layers)")
    if block.frozen_bn == "reestimate" and family.norm != "batchnorm":
        raise ValueError(f"frozen_bn: reestimate needs BatchNorm layers; {family.name} uses {family.norm}")


KIND = Kind(
    "layer_transfer",
    LayerTransferBlock,
    plan,
    (TransferRun,),
    execute,
    follow_up,
    records=(TransferRecord,),
    check=check,
    later=later,
    n_option=NOption("n", clears=("levels", "budget")),  # fixed N: an adaptive block's search settings no longer apply
)
