"""Runs as plain typed data, and the context an executor gets.

A run is a frozen dataclass per kind (`experiments/kinds/`) holding only its own settings. It declares the runs
whose models it starts from (`needs`) and the data it reads (`data_used`); the runner derives the execution order
and the run's fingerprint from these declarations. An executor is a function `(run, context) -> record`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from synthgap.experiments.blocks import Side
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.store import DataStore, ModelCache
from synthgap.experiments.transfer import qualifies_for_prefix_cache
from synthgap.models import ModelConfig, ModelFamily, get_family
from synthgap.train.compute import Compute
from synthgap.train.distributed import ONE_PROCESS, World
from synthgap.train.recipe import TrainRecipe

if TYPE_CHECKING:  # the spec is made of the kinds' blocks, and the kinds of runs
    from synthgap.experiments.settings import Settings


@dataclass(frozen=True)
class DataUse:
    """One set of images a run reads: a data reference, its split, and whether the spec's per_class applies."""

    ref: str
    split: str = "train"
    all_images: bool = False


@dataclass(frozen=True)
class Run:
    name: str
    seed: int
    kind: ClassVar[str] = ""
    ablation: ClassVar[str | None] = None

    def needs(self) -> tuple[Run, ...]:
        """Runs whose trained models this run starts from (they execute first)."""
        return ()

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        """Every set of training images this run reads, by role (the real test set is always read too)."""
        raise NotImplementedError

    def trains_a_suffix(self, spec: Settings) -> bool:
        """Whether this run trains layers n+1..L on cached outputs of frozen layers 1..n (stage 2 without
        augmentation, `transfer.prefix_cache_plan`), or a stitch: the suffix's memory format is then part of the
        arithmetic, so of the run's identity (`identity.suffix_arithmetic`)."""
        return False

    def check_classes(self, classes: tuple[str, ...]) -> None:
        """Refuse the data's class list (the test set's order) when this run cannot use it, e.g. an outside teacher
        of other classes. Called once the data is indexed, before anything is decoded (by --dry-run and the run)."""

    def settings(self) -> dict:
        """The run's own settings (everything but its name), as plain data."""
        fields = asdict(self)
        del fields["name"]
        return {"kind": self.kind, "ablation": self.ablation, **fields}


def caches_a_prefix(n: int, augmentation: str, spec: Settings) -> bool:
    """Whether a frozen prefix of n layers of the spec's model is cached for stage 2 (`transfer`'s own rule)."""
    return qualifies_for_prefix_cache(True, n, get_family(spec.model.name).num_layers, augmentation)


def baseline_name(side: Side, seed: int) -> str:
    return f"baseline-{side}-s{seed}"


@dataclass(frozen=True)
class BaselineRun(Run):
    """A student trained from scratch on one side with the spec's recipe."""

    side: Side = "real"
    kind: ClassVar[str] = "baseline"

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        return {"train": DataUse(spec.data.ref(self.side))}


def baseline(side: Side, seed: int) -> BaselineRun:
    return BaselineRun(baseline_name(side, seed), seed, side)


@dataclass
class RunContext:
    """Everything an executor needs besides its run: data, model cache, device, output folder, progress."""

    spec: Settings
    store: DataStore
    models: ModelCache
    out: Path
    device: torch.device
    progress: bool = True
    fingerprints: dict[str, str] = field(default_factory=dict)  # run name → fingerprint (resumes a killed training)
    compute: Compute = Compute()  # the device type and threads every run computes with (part of its identity)
    gpu_share: float = 1.0  # the share of its GPU a run may fill with resident data (`backends.gpu_share`)
    world: World = ONE_PROCESS  # this process among those one run trains its students in (`experiments.group`)

    @property
    def compute_identity(self) -> dict:
        """The arithmetic a run's training has: device type, threads and resolved precision."""
        return self.compute.identity(self.spec.recipe.precision)

    def run_dir(self, run: Run) -> Path:
        return self.out / "runs" / run.name

    @property
    def family(self) -> ModelFamily:
        return get_family(self.spec.model.name)

    @property
    def num_layers(self) -> int:
        return self.family.num_layers

    def model_config(self, num_classes: int) -> ModelConfig:
        """The spec's model for this data: its class count and the image size it sees."""
        return self.spec.model.model_copy(update={"num_classes": num_classes, "image_size": self.spec.data.resolution})

    def stage2_recipe(self, augmentation: str | None, epochs: int | None) -> TrainRecipe:
        """The spec's recipe with a block's stage-2 overrides (None keeps the recipe's value)."""
        overrides = {"augmentation": augmentation, "epochs": epochs}
        return self.spec.recipe.model_copy(update={k: v for k, v in overrides.items() if v is not None})

    def transfer_fields(self, source_side: Side | None, n: int, frozen: bool) -> dict:
        """Record fields of a student whose layers 1..n came from `source_side`'s model (None: no transfer)."""
        source = self.spec.data.ref(source_side) if source_side else None
        return {"source": source, "source_side": source_side, "n_transferred": n, "frozen": frozen}

    def record_fields(self, run: Run, side: str, target: str | None = None) -> dict:
        """Fields every record of `run` has: identity, which side trained the rest, the test set, the model."""
        return {
            "run": run.name,
            "seed": run.seed,
            "side": side,
            "target": target or self.spec.data.ref(side),
            "test": self.spec.data.test,
            "model": self.spec.model.name,
            "num_layers": self.num_layers,
            "preset": self.spec.recipe.preset,
            "tta": self.spec.recipe.tta,
        }


@dataclass(frozen=True)
class NOption:
    """The block key that `--n` sets, and the keys it replaces (an adaptive sweep's search settings)."""

    key: str
    clears: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kind:
    """One kind of run: its spec block, planner, executor, record classes and the checks of its block against the
    spec. Every kind is one module in `experiments/kinds/` with one registration (and its report section one
    module in `report/`); the spec's block union, the record classes and the data a spec reads derive from these."""

    name: str  # the spec block's `kind`
    block: type
    plan: Callable[[Any, list[int], Settings], list[Run]]  # (block, seeds, spec) -> runs
    run_types: tuple[type[Run], ...]
    execute: Callable[[Any, RunContext], ResultRecord]  # (run, context) -> record
    # Blocks that choose their runs from results (an adaptive sweep): (block, seeds, spec, records) -> next runs
    follow_up: Callable[[Any, list[int], Settings, list[ResultRecord]], list[Run]] | None = None
    records: tuple[type[ResultRecord], ...] = ()  # the classes of the records its executor writes
    # (block, spec, model family) -> None: fills in family-dependent defaults, raises ValueError on a misfit
    check: Callable[[Any, Settings, ModelFamily], None] | None = None
    # Blocks with a follow_up: (block, seeds, spec) -> (the setting that makes it adaptive, a bound on the runs it
    # may add beyond the planned ones), told by --dry-run; None for a block that adds none
    later: Callable[[Any, list[int], Settings], tuple[str, str] | None] | None = None
    # What `synthgap run --n 0,8,16` (RunOptions.n) does to a block of this kind: sets this key to the list and
    # drops the `clears` keys that the list replaces. Written as a literal: `synthgap.speccheck` reads it from the
    # source, so the option is applied before torch is imported. None: the kind takes no `--n`.
    n_option: NOption | None = None
