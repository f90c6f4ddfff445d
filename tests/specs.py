"""Tiny experiment specs for tests: a width-0.125 student, one fp32 epoch of batch 4, two images per class."""

from __future__ import annotations

from pathlib import Path

from synthgap.config import validate
from synthgap.experiments.spec import ExperimentSpec

TINY_MODEL = {"width": 0.125}
TINY_RECIPE = {"epochs": 1, "batch_size": 4, "precision": "fp32"}


def tiny_spec(data_root: Path, experiments: list[dict], *, recipe: dict | None = None, **changes) -> ExperimentSpec:
    """A validated spec over `data_root` (a cifake layout) running `experiments`; `recipe` updates the tiny recipe,
    other keyword arguments replace top-level keys."""
    raw = {
        "name": "tiny",
        "data": {"data_root": str(data_root), "per_class": 2},
        "model": TINY_MODEL,
        "recipe": {**TINY_RECIPE, **(recipe or {})},
        "seeds": [0],
        "experiments": experiments,
    }
    return validate(ExperimentSpec, {**raw, **changes})
