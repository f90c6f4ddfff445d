"""The Python API, for notebooks and scripts: the functions the `synthgap` commands call.

    import synthgap

    frame = synthgap.run("configs/cifake.yaml", out="runs/exp", epochs=2)  # a DataFrame, one row per run
    synthgap.report("runs/exp")                                            # runs/exp/report.md (and .html, figures)

`run` and `train` validate their inputs as the command line does and raise `SynthgapError` (one readable line) for
bad input. Importing this module is cheap: torch, pandas and the stages are imported by the function that needs them.
See docs/api.md for a walkthrough.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthgap.errors import SynthgapError
from synthgap.frames import load_analysis, load_results  # the DataFrames, part of this API (pandas stays lazy)
from synthgap.io import folder_argument

if TYPE_CHECKING:
    from synthgap.experiments.results import ResultRecord
    from synthgap.experiments.spec import ExperimentSpec

__all__ = [
    "RunOptions",
    "analyze",
    "dry_run",
    "experiment_spec",
    "load_analysis",
    "load_results",
    "report",
    "run",
    "run_records",
    "train",
]

Source = str | os.PathLike | Mapping[str, Any]  # a YAML file, YAML text, or the mapping itself


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How `run` changes the spec and where its runs execute: the options of `synthgap run`.

    Spec changes (applied before validation): `data_root`, `seeds` (every block's seeds), `n` (the N values of every
    layer-transfer block), `epochs`, `per_class` (N, "max:N" or {"max": N}, "balanced", "matched"), `width`,
    `overrides` ({dotted key: value}, or "KEY=VALUE" strings with YAML values as `--set`), `skip_bad`.
    Execution: `backend` (local | ray | slurm), `address`, `workers`, `cpus_per_run`, `gpus_per_run`,
    `slurm_partition`, `slurm_time` (minutes), `slurm_cluster`, `model_cache`, `rerun_changed`, `keep_going`,
    `progress` (progress bars)."""

    data_root: str | os.PathLike | None = None
    seeds: Sequence[int] | None = None
    n: Sequence[int] | None = None
    epochs: int | None = None
    per_class: int | str | Mapping | None = None
    width: float | None = None
    overrides: Mapping[str, Any] | Sequence[str] | None = None
    skip_bad: bool = False
    backend: str = "local"
    address: str | None = None
    workers: int | None = None
    cpus_per_run: int | None = None
    gpus_per_run: float | None = None
    slurm_partition: str | None = None
    slurm_time: int | None = None
    slurm_cluster: str | None = None
    model_cache: str | os.PathLike | None = None
    rerun_changed: bool = False
    keep_going: bool = False
    progress: bool = True


def run(spec: Source | ExperimentSpec, out: str | os.PathLike = "runs/exp", backend: str = "local", **options):
    """Run an experiment (like `synthgap run`) and return `load_results(out)`: every record in `out`, one row each.

    `spec` is a path to a spec file, the YAML text of one, or a dict; `options` are `RunOptions` fields (e.g.
    `epochs=2`, `data_root=...`, `overrides={"recipe.lr": 0.05}`). Rerunning resumes: finished runs are skipped. The
    report is not written: call `report(out)`. For the typed records instead of a DataFrame, use `run_records`."""
    run_records(spec, out, _options(RunOptions, options, backend=backend))
    return load_results(out)


def run_records(
    spec: Source | ExperimentSpec, out: str | os.PathLike = "runs/exp", options: RunOptions | None = None
) -> list[ResultRecord]:
    """`run`, returning the typed records (`ResultRecord` and its per-kind subclasses) of every run in `out`.
    A validated `ExperimentSpec` is taken as it is (the options' spec changes are not applied to it again)."""
    from synthgap.experiments.backends import make_backend
    from synthgap.experiments.runner import run_experiment

    options = options or RunOptions()
    out = _out_folder(out)
    spec = _validated(spec, options)
    slurm = {"slurm_partition": options.slurm_partition, "timeout_min": options.slurm_time}
    engine = make_backend(
        options.backend,
        _resources(spec, options),
        out=out,
        address=options.address,
        workers=options.workers,
        slurm_cluster=options.slurm_cluster,
        slurm_parameters={k: v for k, v in slurm.items() if v is not None},
    )
    return run_experiment(
        spec,
        out,
        model_cache=_path(options.model_cache),
        progress=options.progress,
        rerun_changed=options.rerun_changed,
        keep_going=options.keep_going,
        backend=engine,
    )


def dry_run(
    spec: Source | ExperimentSpec, out: str | os.PathLike = "runs/exp", options: RunOptions | None = None
) -> str:
    """What `run` would do (runs, data, compute), checked against the data layout, as text; trains nothing."""
    from synthgap.experiments.backends import planned_compute
    from synthgap.experiments.dryrun import dry_run_report

    options = options or RunOptions()
    out = _out_folder(out)  # a dry run refuses an out the run could not create, with the run's line
    spec = _validated(spec, options)
    return dry_run_report(spec, out, planned_compute(options.backend, _resources(spec, options)))


def experiment_spec(spec: Source | ExperimentSpec, options: RunOptions | None = None) -> ExperimentSpec:
    """The validated spec: `spec` (a path, YAML text or a dict) with the options' spec changes applied."""
    from synthgap.speccheck import check_spec_keys

    raw, where = spec_data(spec, options or RunOptions())
    check_spec_keys(raw, where)  # unknown keys and kinds: found before the spec's classes (and torch) are imported
    from synthgap.config import validate
    from synthgap.experiments.spec import ExperimentSpec

    return validate(ExperimentSpec, raw, where=where)


def spec_data(spec: Source | ExperimentSpec, options: RunOptions) -> tuple[dict[str, Any], str]:
    """(`spec` as plain data with the options' spec changes applied, not validated; where its errors say it came
    from). Imports nothing heavy: the step of `experiment_spec` before validation."""
    from synthgap.config import parse_override, set_dotted

    if _is_spec(spec):
        raw, where = spec.model_dump(mode="json"), "spec"
    else:
        raw, where = _mapping(spec, "spec")
    seeds = _whole_numbers(options.seeds, "seeds")
    n = _whole_numbers(options.n, "n")
    data_root = options.data_root and str(options.data_root)
    for key, value in {"data.data_root": data_root, "recipe.epochs": options.epochs,
                       "data.per_class": per_class_value(options.per_class), "model.width": options.width,
                       "seeds": seeds}.items():  # fmt: skip
        if value is not None:
            set_dotted(raw, key, value)
    for block in raw.get("experiments") or []:
        if isinstance(block, dict):
            if seeds is not None and "seeds" in block:
                block["seeds"] = seeds
            if n is not None and block.get("kind") == "layer_transfer":
                block["n"] = n  # fixed N: an adaptive block's search settings no longer apply
                block.pop("levels", None)
                block.pop("budget", None)
    overrides = options.overrides or {}
    pairs = overrides.items() if isinstance(overrides, Mapping) else [parse_override(item) for item in overrides]
    for key, value in pairs:
        set_dotted(raw, key, value)
    if options.skip_bad:
        set_dotted(raw, "data.skip_bad", True)
    return raw, where


def _is_spec(value: object) -> bool:
    """Whether `value` is an `ExperimentSpec`, without importing the spec's module (and torch) to find out: none
    can exist before it is imported."""
    module = sys.modules.get("synthgap.experiments.spec")
    return module is not None and isinstance(value, module.ExperimentSpec)


# train() keyword → dotted key of the run config (TrainRunConfig)
TRAIN_SETTINGS = {
    "name": "name", "seed": "seed", "side": "side", "model": "model.name", "width": "model.width",
    "stem": "model.stem", "test_data": "data.test", "data_root": "data.data_root", "per_class": "data.per_class",
    "test_per_class": "data.test_per_class", "resolution": "data.resolution",
    "storage_resolution": "data.storage_resolution", "skip_bad": "data.skip_bad",
    "preset": "recipe.preset", "epochs": "recipe.epochs", "batch_size": "recipe.batch_size", "lr": "recipe.lr",
    "augmentation": "recipe.augmentation", "normalization": "recipe.normalization", "precision": "recipe.precision",
}  # fmt: skip


def train(
    train_data: str | None = None,
    *,
    config: Source | None = None,
    out: str | os.PathLike = "runs",
    overrides: Mapping[str, Any] | None = None,
    rerun_changed: bool = False,
    progress: bool = True,
    **settings,
) -> ResultRecord:
    """Train one student from scratch and test it on real images (like `synthgap train`); returns its record.

    `train_data` is a data reference (cifake:real, cifake:synthetic, folder:DIR, generated:DIR); `config` a run
    config (path, YAML text or dict); `settings` are the keywords of `TRAIN_SETTINGS` (e.g. `epochs=1`,
    `width=0.5`, `data_root=...`), `overrides` any other {dotted key: value}. The run goes to `out`/<run name>/ and
    one line to `out`/results.jsonl; the same call again returns the recorded result without training."""
    from synthgap.config import set_dotted, validate
    from synthgap.experiments.single import TrainRunConfig, run_baseline

    unknown = sorted(set(settings) - set(TRAIN_SETTINGS))
    if unknown:
        raise SynthgapError(f"unknown train setting(s) {', '.join(unknown)}; known: {', '.join(TRAIN_SETTINGS)}")
    raw, where = _mapping(config, "config") if config is not None else ({}, "options")
    if train_data is None and "train" not in (raw.get("data") or {}):
        raise SynthgapError(
            "train needs the training data: train_data='cifake:real' (or cifake:synthetic, folder:DIR, "
            "generated:DIR), or data.train in the config"
        )
    values = {TRAIN_SETTINGS[key]: value for key, value in settings.items()}
    values |= {"data.train": train_data, "data.per_class": per_class_value(values.get("data.per_class"))}
    if values.get("data.data_root") is not None:
        values["data.data_root"] = str(values["data.data_root"])
    for key, value in {**values, **(overrides or {})}.items():
        if value is not None:
            set_dotted(raw, key, value)
    out = _out_folder(out)
    run_config = validate(TrainRunConfig, raw, where=where)  # unknown augmentation/normalization names fail here
    return run_baseline(run_config, out / run_config.run_name(), out, progress=progress, rerun_changed=rerun_changed)


def report(folder: str | os.PathLike) -> Path:
    """Write `folder`/report.md, report.html and figures/*.png from its results; returns the report.md path."""
    from synthgap.report.build import build_report

    return build_report(folder_argument(folder, "folder"))


def analyze(
    folder: str | os.PathLike,
    *,
    model_cache: str | os.PathLike | None = None,
    probe_per_class: int = 100,
    max_images: int | None = 2500,
    progress: bool = True,
) -> Path:
    """Per-layer diagnostics of the experiment's R and S baselines (like `synthgap analyze`): writes
    `folder`/analysis.jsonl and returns its path (`load_analysis(folder)` reads it). `max_images` caps each image
    set, class-stratified (None: all); `probe_per_class` real training images per class train each linear probe."""
    from synthgap.analysis import analyze as analyze_folder

    return analyze_folder(
        folder_argument(folder, "folder"),
        model_cache=_path(model_cache),
        probe_per_class=probe_per_class,
        max_images=max_images,
        progress=progress,
    )


def per_class_value(value: Any) -> Any:
    """A per-class setting as a config value: "500" → 500, "max:500" → {max: 500}; anything else as it is
    (balanced / matched, or a value the config then rejects with a clear error)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    if text.startswith("max:") and text[4:].strip().isdigit():
        return {"max": int(text[4:])}
    return text


# --- helpers -------------------------------------------------------------------------------------------------------


def _options(cls: type, given: dict[str, Any], **fixed: Any):
    """`cls(**fixed, **given)`, an unknown keyword being one error line that lists the known ones."""
    known = [field.name for field in fields(cls)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SynthgapError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return cls(**{**given, **fixed})


def _validated(spec: Source | ExperimentSpec, options: RunOptions) -> ExperimentSpec:
    return spec if _is_spec(spec) else experiment_spec(spec, options)


def _resources(spec: ExperimentSpec, options: RunOptions):
    from synthgap.experiments.backends import Resources

    gpus = spec.resources.gpus if options.gpus_per_run is None else options.gpus_per_run
    return Resources(cpus=options.cpus_per_run or spec.resources.cpus, gpus=gpus)


def _path(value: str | os.PathLike | None, what: str = "model_cache") -> Path | None:
    return None if value is None else folder_argument(value, what)


def _out_folder(value: object) -> Path:
    """The folder `out` names, refused in one line when it is no path or cannot be a folder (a file is there, or
    above it) — the line a failed `mkdir` of the run would give, without creating anything."""
    from synthgap.errors import os_error_message
    from synthgap.io import check_folder_path

    out = folder_argument(value, "out")
    try:
        check_folder_path(out)
    except OSError as exc:
        raise SynthgapError(os_error_message(exc)) from None
    return out


def _whole_numbers(values: object, what: str) -> list[int] | None:
    """A list of whole numbers from a sequence of them; a string ("0,1") or other values are one error line."""
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise SynthgapError(f"{what}: expected a list of whole numbers such as [0, 1], got {values!r}")
    bad = [value for value in values if isinstance(value, bool) or not isinstance(value, int)]
    if bad:
        raise SynthgapError(f"{what}: expected whole numbers, got {bad[0]!r} in {list(values)!r}")
    return list(values)


def _mapping(source: Source, what: str) -> tuple[dict[str, Any], str]:
    """(a deep copy of the mapping, where errors say it came from) for a path, YAML text or a dict.

    A `Path` is always a file; a string is a file when it is one line naming an existing file or ending in
    .yaml/.yml (a missing one is then "config file not found"), and YAML text otherwise."""
    import yaml

    from synthgap.config import read_yaml

    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source)), what
    if isinstance(source, os.PathLike):
        return read_yaml(Path(source)), str(source)
    if not isinstance(source, str):
        raise SynthgapError(f"{what} must be a path, YAML text or a dict, got {type(source).__name__}")
    if "\n" not in source and (source.strip().endswith((".yaml", ".yml")) or Path(source).is_file()):
        return read_yaml(Path(source)), source
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise SynthgapError(f"{what}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SynthgapError(
            f"{what}: expected a mapping at the top level (or a path to a YAML file), got {type(data).__name__}"
        )
    return data, what
