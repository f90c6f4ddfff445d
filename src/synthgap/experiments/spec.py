"""Experiment specs: YAML validated into typed blocks (unknown keys, out-of-range N, bad data references fail).

name: cifake-layers
data: {real: cifake:real, synthetic: cifake:synthetic, test: cifake:real, per_class: 1000}
model: {width: 1.0}
recipe: {epochs: 4}
seeds: [0]
experiments:
  - kind: baseline
  - kind: layer_transfer
    directions: [synthetic_to_real, real_to_synthetic]
    n: [1, 2, 3]
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthgap.data.config import DataPrep
from synthgap.data.sources import DataRef
from synthgap.models.resnet import ModelConfig
from synthgap.train.recipe import TrainRecipe

Side = Literal["real", "synthetic"]
Direction = Literal["synthetic_to_real", "real_to_synthetic"]
DIRECTIONS: dict[str, tuple[Side, Side]] = {  # direction → (side that trains layers 1..N, side that trains the rest)
    "synthetic_to_real": ("synthetic", "real"),
    "real_to_synthetic": ("real", "synthetic"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class BaselineBlock(_Strict):
    kind: Literal["baseline"]
    sides: list[Side] = ["real", "synthetic"]
    seeds: list[int] | None = None  # default: the spec's seeds


class LayerTransferBlock(_Strict):
    kind: Literal["layer_transfer"]
    directions: list[Direction] = ["synthetic_to_real", "real_to_synthetic"]
    n: list[int] = list(range(1, 18))
    seeds: list[int] | None = None
    freeze: bool = True  # layers 1..N frozen (else fine-tuned with the rest)
    rest: Literal["reinit", "finetune"] = "reinit"  # layers N+1..18: fresh, or kept from the source and fine-tuned
    frozen_bn: Literal["eval", "reestimate"] = "eval"  # frozen BatchNorm statistics: source's, or re-estimated
    augmentation: str | None = None  # stage-2 augmentation (default: the recipe's); "none" enables the prefix cache
    epochs: int | None = Field(None, ge=1)  # stage-2 epochs (default: the recipe's)

    @field_validator("n")
    @classmethod
    def _n_in_range(cls, values: list[int]) -> list[int]:
        bad = [v for v in values if not 0 <= v <= 18]
        if bad:
            raise ValueError(f"N must be in 0..18, got {bad}")
        return values


Arm = Literal["transfer", "transfer_finetune", "scratch", "full_finetune"]


class DataReductionBlock(_Strict):
    """Students trained on a fraction of the real data (nested stratified subsets), per arm:
    transfer: layers 1..k from the synthetic model, frozen, the rest re-initialised; transfer_finetune: the same with
    the rest kept from the synthetic model; scratch: the whole student; full_finetune: all layers from the synthetic
    model, all trained."""

    kind: Literal["data_reduction"]
    fractions: list[float] = [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64]
    seeds: list[int] | None = None
    k: int = Field(16, ge=1, le=17)
    arms: list[Arm] = ["transfer", "transfer_finetune", "scratch"]
    # same_steps: every fraction gets the optimiser steps of the full set (smaller sets see more epochs), so a
    # curve measures less data, not less training; same_epochs: steps shrink with the fraction.
    schedule: Literal["same_steps", "same_epochs"] = "same_steps"
    augmentation: str | None = None  # stage-2 augmentation (default: the recipe's); "none" enables the prefix cache
    epochs: int | None = Field(None, ge=1)  # epochs at fraction 1 (default: the recipe's)

    @field_validator("fractions")
    @classmethod
    def _fractions_in_range(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not 0 < v <= 1]
        if bad:
            raise ValueError(f"fractions must be in (0, 1], got {bad}")
        return values


Block = Annotated[BaselineBlock | LayerTransferBlock | DataReductionBlock, Field(discriminator="kind")]


class ExperimentSpec(_Strict):
    name: str = "experiment"
    data: ExperimentData = ExperimentData()
    model: ModelConfig = ModelConfig()
    recipe: TrainRecipe = TrainRecipe()
    seeds: list[int] = [0]
    experiments: list[Block] = Field(min_length=1)
