"""Tiny experiment specs for tests: a width-0.125 student, one fp32 epoch of batch 4, two images per class."""

from __future__ import annotations

from pathlib import Path

from synthgap.config import validate
from synthgap.experiments.spec import ExperimentSpec

TINY_MODEL = {"width": 0.125}
TINY_RECIPE = {"epochs": 1, "batch_size": 4, "precision": "fp32"}


def tiny_raw(
    data_root: Path | None,
    experiments: list[dict],
    *,
    recipe: dict | None = None,
    per_class: int | str | dict | None = 2,
    **changes,
) -> dict:
    """The unvalidated spec dict of `tiny_spec` (for tests that hand a dict or YAML text to synthgap)."""
    data = {"data_root": None if data_root is None else str(data_root)}
    if per_class is not None:
        data["per_class"] = per_class
    raw = {
        "name": "tiny",
        "data": data,
        "model": TINY_MODEL,
        "recipe": {**TINY_RECIPE, **(recipe or {})},
        "seeds": [0],
        "experiments": experiments,
    }
    return {**raw, **changes}


def tiny_spec(
    data_root: Path | None,
    experiments: list[dict],
    *,
    recipe: dict | None = None,
    per_class: int | str | dict | None = 2,
    **changes,
) -> ExperimentSpec:
    """A validated spec over `data_root` (a cifake layout) running `experiments`; `recipe` updates the tiny recipe,
    `per_class` is the data's (None: every image), other keyword arguments replace top-level keys (`data=` the
    whole data block, `per_class` included)."""
    return validate(ExperimentSpec, tiny_raw(data_root, experiments, recipe=recipe, per_class=per_class, **changes))
