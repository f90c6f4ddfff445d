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

The blocks a spec accepts are those of the registered kinds (`experiments/kinds/`): each kind brings its block and
the checks of that block against the rest of the spec (the model family's layers, the resolution).
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, model_validator

from synthgap.experiments.blocks import (  # noqa: F401  (the spec's parts, importable from here)
    DIRECTIONS,
    Direction,
    ExperimentData,
    RunResources,
    Side,
    Strict,
)
from synthgap.experiments.kinds import KINDS
from synthgap.models import ModelConfig, get_family
from synthgap.train.recipe import TrainRecipe

Block = Annotated[Union[tuple(KINDS.get(name).block for name in KINDS)], Field(discriminator="kind")]  # noqa: UP007


class ExperimentSpec(Strict):
    name: str = "experiment"
    data: ExperimentData = ExperimentData()
    model: ModelConfig = ModelConfig()
    recipe: TrainRecipe = TrainRecipe()
    seeds: list[int] = Field([0], min_length=1)
    experiments: list[Block] = Field(min_length=1)
    resources: RunResources = RunResources()

    @model_validator(mode="after")
    def _blocks_fit_the_spec(self) -> ExperimentSpec:
        """Each block checked by its kind against the model family and the data (layer numbers from the family are
        filled in here), rather than after hours of training."""
        family = get_family(self.model.name)
        for block in self.experiments:
            kind = KINDS.get(block.kind)
            if kind.check is not None:
                kind.check(block, self, family)
        return self
