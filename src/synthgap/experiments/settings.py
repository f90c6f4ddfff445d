"""What a spec sets for every run, apart from its blocks: the data, the student, its recipe and the resources.

Kinds, runs, the store and the students read a spec through this type, never through `ExperimentSpec`, which also
holds the blocks and so imports every kind (`spec.py` builds its block union from the kind registry). Typing the
kinds' argument as `Settings` keeps that dependency one way: spec → kinds → settings.
"""

from __future__ import annotations

from pydantic import field_validator

from synthgap.experiments.blocks import ExperimentData, RunResources, Strict
from synthgap.models import ModelConfig
from synthgap.train.recipe import TrainRecipe


class Settings(Strict):
    data: ExperimentData = ExperimentData()
    model: ModelConfig = ModelConfig()
    recipe: TrainRecipe = TrainRecipe()
    resources: RunResources = RunResources()

    @field_validator("recipe")
    @classmethod
    def _one_process_per_run(cls, recipe: TrainRecipe) -> TrainRecipe:
        if recipe.sync_bn:
            raise ValueError(
                "sync_bn needs a run on several processes (`synthgap train --nproc N` on N GPUs); the runs of a spec "
                "train in one process each"
            )
        return recipe
