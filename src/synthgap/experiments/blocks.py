"""What every spec block is made of: strict pydantic models, the two sides, value checks, and the spec's data
section. Each kind's block lives in its own module (`experiments/kinds/`); this module holds only what they share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthgap.data.config import DataPrep
from synthgap.data.sources import DataRef
from synthgap.data.transforms import AUGMENTATIONS

Side = Literal["real", "synthetic"]
Direction = Literal["synthetic_to_real", "real_to_synthetic"]
DIRECTIONS: dict[str, tuple[Side, Side]] = {  # direction → (side that trains layers 1..N, side that trains the rest)
    "synthetic_to_real": ("synthetic", "real"),
    "real_to_synthetic": ("real", "synthetic"),
}


class Strict(BaseModel):
    """A spec section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def all_valid(values: list, valid: Callable[[float], bool], rule: str) -> list:
    """`values` unchanged when every one satisfies `valid`, else an error stating `rule` and the offenders."""
    bad = [v for v in values if not valid(v)]
    if bad:
        raise ValueError(f"{rule}, got {bad}")
    return values


def check_layers(values: list[int], low: int, high: int, what: str) -> None:
    all_valid(values, lambda v: low <= v <= high, f"{what}: N must be in {low}..{high}")


def known_preset(name: str | None) -> str | None:
    """Unknown augmentation names fail when the spec is read, with the list of known ones, not after training."""
    if name is not None:
        AUGMENTATIONS.get(name)
    return name


def not_negative(values: list[int] | None) -> list[int] | None:
    return None if values is None else all_valid(values, lambda v: v >= 0, "N must not be negative")


class ExperimentData(DataPrep):
    """The two training sides and the test set; `per_class` applies to each side (shared by every run)."""

    real: str = "cifake:real"
    synthetic: str = "cifake:synthetic"
    test: str = "cifake:real"  # its test split is the real test set every run is measured on

    @field_validator("real", "synthetic", "test")
    @classmethod
    def _valid_ref(cls, value: str) -> str:
        DataRef.parse(value)
        return value

    def ref(self, side: Side) -> str:
        return self.real if side == "real" else self.synthetic


class RunResources(Strict):
    """What each run asks its backend for (the command line can override it)."""

    # CPU threads of every run on every backend (None: all of this process's locally, 1 on Ray and SLURM). The
    # thread count changes a training's numbers, so it is part of each run's identity.
    cpus: int | None = Field(None, ge=1)
    gpus: float = Field(0.0, ge=0)
    # Machines one run trains on (slurm backend): each starts the run's processes (gpus of them, or --nproc), which
    # train it together; part of each run's identity through its process count.
    nodes: int = Field(1, ge=1)
