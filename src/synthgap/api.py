"""The Python API, for notebooks and scripts: the functions the `synthgap` commands call.

    import synthgap

    frame = synthgap.run("configs/cifake.yaml", out="runs/exp", epochs=2)  # a DataFrame, one row per run
    synthgap.report("runs/exp")                                            # runs/exp/report.md (and .html, figures)

`run` and `train` validate their inputs as the command line does and raise `SynthgapError` (one readable line) for
bad input. Importing this module is cheap: torch, pandas and the stages are imported by the function that needs them.
See docs/api.md for a walkthrough.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthgap.errors import SynthgapError
from synthgap.frames import load_analysis, load_results  # the DataFrames, part of this API (pandas stays lazy)
from synthgap.io import folder_argument
from synthgap.specload import (
    RunOptions,
    Source,
    is_spec,
    keyword_label,
    layered,
    load_spec,
    mapping_source,
    per_class_value,
)

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
    compute = planned_compute(options.backend, _resources(spec, options))
    return dry_run_report(spec, out, compute, progress=options.progress)


def experiment_spec(
    spec: Source | ExperimentSpec, options: RunOptions | None = None, label: Callable[[str, Any], str] = keyword_label
) -> ExperimentSpec:
    """The validated spec: `spec` (a path, YAML text or a dict) with the options' spec changes applied; an error
    names the spec, or the option that caused it as `label(field, value)` writes it (`n=[25]: ...` by default)."""
    return load_spec(spec, options, label)


# train() keyword → dotted key of the run config (TrainRunConfig)
TRAIN_SETTINGS = {
    "name": "name", "seed": "seed", "side": "side", "model": "model.name", "width": "model.width",
    "stem": "model.stem", "test_data": "data.test", "data_root": "data.data_root", "per_class": "data.per_class",
    "test_per_class": "data.test_per_class", "resolution": "data.resolution",
    "storage_resolution": "data.storage_resolution", "skip_bad": "data.skip_bad",
    "preset": "recipe.preset", "epochs": "recipe.epochs", "batch_size": "recipe.batch_size", "lr": "recipe.lr",
    "augmentation": "recipe.augmentation", "normalization": "recipe.normalization", "precision": "recipe.precision",
    "sync_bn": "recipe.sync_bn",
}  # fmt: skip


def train(
    train_data: str | None = None,
    *,
    config: Source | None = None,
    out: str | os.PathLike = "runs",
    overrides: Mapping[str, Any] | None = None,
    rerun_changed: bool = False,
    progress: bool = True,
    nproc: int = 1,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    **settings,
) -> ResultRecord | None:
    """Train one student from scratch and test it on real images (like `synthgap train`); returns its record.

    `train_data` is a data reference (cifake:real, cifake:synthetic, folder:DIR, generated:DIR); `config` a run
    config (path, YAML text or dict); `settings` are the keywords of `TRAIN_SETTINGS` (e.g. `epochs=1`,
    `width=0.5`, `data_root=...`), `overrides` any other {dotted key: value}. The run goes to `out`/<run name>/ and
    one line to `out`/results.jsonl; the same call again returns the recorded result without training.
    `nproc` > 1 trains the run as that many processes on this machine (DistributedDataParallel: one per GPU, or gloo
    on the CPU; see `synthgap.train.distributed`); inside such a launch, the processes other than the first return
    None. `nnodes` > 1 makes this machine one of that many, each making the same call with the same `rdzv_endpoint`
    (HOST:PORT of the first machine) and `out` on storage they all mount at the same path (e.g. one `srun` task per
    node); the run then has `nproc` × `nnodes` processes."""
    from synthgap.experiments.single import TrainRunConfig, train_baseline
    from synthgap.train.distributed import Nodes

    unknown = sorted(set(settings) - set(TRAIN_SETTINGS))
    if unknown:
        raise SynthgapError(f"unknown train setting(s) {', '.join(unknown)}; known: {', '.join(TRAIN_SETTINGS)}")
    raw, where = mapping_source(config, "config") if config is not None else ({}, "options")
    if train_data is None and "train" not in (raw.get("data") or {}):
        raise SynthgapError(
            "train needs the training data: train_data='cifake:real' (or cifake:synthetic, folder:DIR, "
            "generated:DIR), or data.train in the config"
        )
    values = {TRAIN_SETTINGS[key]: value for key, value in settings.items()}
    values |= {"data.train": train_data, "data.per_class": per_class_value(values.get("data.per_class"))}
    if values.get("data.data_root") is not None:
        values["data.data_root"] = str(values["data.data_root"])
    out = _out_folder(out)
    # unknown augmentation/normalization names fail here
    run_config = layered(TrainRunConfig, raw, where, {**values, **(overrides or {})})
    nodes = Nodes(nnodes, rdzv_endpoint)
    return train_baseline(run_config, out, nproc=nproc, nodes=nodes, progress=progress, rerun_changed=rerun_changed)


def report(folder: str | os.PathLike, *more: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write `folder`/report.md, report.html and figures/*.png from its results; returns the report.md path.

    With `more` folders (or `out`), one report of them all is written to `out` instead, a folder apart: each run once,
    and an error when one run name holds two students with other settings (`report.build.build_joined_report`)."""
    from synthgap.report.build import build_joined_report, build_report

    folders = [folder_argument(f, "folder") for f in (folder, *more)]
    if out is None:
        if more:
            raise SynthgapError(f"a report of {len(folders)} folders needs --out DIR: it is written apart from them")
        return build_report(folders[0])
    return build_joined_report(folders, folder_argument(out, "out"))


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


# --- helpers -------------------------------------------------------------------------------------------------------


def _options(cls: type, given: dict[str, Any], **fixed: Any):
    """`cls(**fixed, **given)`, an unknown keyword being one error line that lists the known ones."""
    known = [field.name for field in fields(cls)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SynthgapError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return cls(**{**given, **fixed})


def _validated(spec: Source | ExperimentSpec, options: RunOptions) -> ExperimentSpec:
    """A validated spec as it is (the options' spec changes are not applied to it again); anything else loaded."""
    return spec if is_spec(spec) else load_spec(spec, options)


def _resources(spec: ExperimentSpec, options: RunOptions):
    from synthgap.experiments.backends import Resources

    gpus = spec.resources.gpus if options.gpus_per_run is None else options.gpus_per_run
    nodes = spec.resources.nodes if options.nodes_per_run is None else options.nodes_per_run
    return Resources(cpus=options.cpus_per_run or spec.resources.cpus, gpus=gpus, processes=options.nproc, nodes=nodes)


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
