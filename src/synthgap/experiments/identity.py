"""Run identity: everything that determines a run's result, and its hash (the run's fingerprint).

A run is known by its name and its fingerprint. The settings behind a fingerprint are written to the run's folder
(`run.json`), so a run whose settings changed can be told apart from a finished one, with the changed settings named.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from synthgap.experiments.runs import Run
from synthgap.experiments.settings import Settings
from synthgap.experiments.spec import ExperimentSpec
from synthgap.experiments.store import DataStore
from synthgap.models import get_family
from synthgap.train.compute import Compute


def fingerprint_of(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:20]


def run_settings(
    run: Run, spec: ExperimentSpec, store: DataStore, needed: dict[str, str], compute: Compute
) -> dict[str, Any]:
    """Everything that determines `run`'s result: its own settings, the identity of every image set it reads (the
    images' bytes and labels, subset), the model, the recipe, the test set, the arithmetic (device type, threads,
    precision), and the fingerprints of the runs whose models it starts from (`needed`: name → fingerprint)."""
    data = {
        role: store.identity(use.ref, use.split, all_images=use.all_images) for role, use in run.data_used(spec).items()
    }
    data["test"] = store.test_identity()
    return {
        "run": run.settings(),
        "data": data,
        "model": {**spec.model.model_dump(mode="json", exclude_none=True), "image_size": spec.data.resolution},
        "recipe": spec.recipe.model_dump(mode="json", exclude_none=True),
        "compute": {**compute.identity(spec.recipe.precision), **suffix_arithmetic(run, spec)},
        "needs": {name: needed[name] for name in sorted(needed)},
    }


def suffix_arithmetic(run: Run, spec: Settings) -> dict[str, str]:
    """A stage 2 on cached prefix features convolves its suffix channels-last when the recipe does, as the whole model
    trains (before, it always ran contiguous). Named only for such runs of a family whose suffix convolves maps, so
    every other fingerprint stays as it was, and a folder whose stage-2 runs were recorded the old way is told that
    this setting changed."""
    changed = spec.recipe.channels_last and get_family(spec.model.name).suffix_maps and run.trains_a_suffix(spec)
    return {"suffix_memory_format": "channels_last"} if changed else {}


def fingerprints(
    runs: list[Run],
    spec: ExperimentSpec,
    store: DataStore,
    compute: Compute,
    known: dict[str, tuple[str, dict]] | None = None,
) -> dict[str, tuple[str, dict]]:
    """{run name: (fingerprint, settings)} for runs in dependency order (each run's needs come before it, or are in
    `known`, the fingerprints of runs planned earlier)."""
    out: dict[str, tuple[str, dict]] = dict(known or {})
    for run in runs:
        needed = {need.name: out[need.name][0] for need in run.needs()}
        settings = run_settings(run, spec, store, needed, compute)
        out[run.name] = (fingerprint_of(settings), settings)
    return out


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b": value} for every leaf of nested dicts."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def what_changed(run_file: Path, recorded: str | None, fingerprint: str, settings: dict[str, Any]) -> str:
    """Why a run recorded with fingerprint `recorded` is not the planned one (`fingerprint`, `settings`): the changed
    settings, read from the run.json that `run_file` names when it belongs to that record."""
    if not recorded:
        return "recorded by an older synthgap, without a settings fingerprint"
    try:
        saved = json.loads(Path(run_file).read_text())
    except (OSError, ValueError):
        saved = {}
    if saved.get("fingerprint") != recorded:
        return f"fingerprint {recorded} recorded, {fingerprint} now"
    return changed_settings(saved["settings"], settings)


def changed_settings(old: dict[str, Any], new: dict[str, Any], limit: int = 6) -> str:
    """'recipe.epochs 4 → 3, data.train.files 1a2b… → 9f8e…' for the leaves that differ."""
    before, after = flatten(old), flatten(new)
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))

    def show(value: Any) -> str:  # long values (paths) keep both ends: where they differ is usually the end
        text = json.dumps(value, default=str) if not isinstance(value, str) else value
        return text if len(text) <= 60 else f"{text[:20]}…{text[-39:]}"

    parts = [f"{key} {show(before.get(key))} → {show(after.get(key))}" for key in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return ", ".join(parts) or "no setting differs (the fingerprint was made by another synthgap version)"
