"""Run a spec's runs in this process: skip finished runs, reuse cached models, append results.

A run counts as finished only when results.jsonl holds a record with its name and its fingerprint (the hash of its
settings, `identity.py`). A recorded run whose settings have changed since is never answered with its old record:
the runner stops and names the changed settings, or, with `rerun_changed`, moves the old record to
superseded.jsonl and runs it again. Resuming is safe at any moment of a kill: the executor writes its record into its
run folder, the driver alone appends it to results.jsonl (atomically), and a model in the cache counts only once its
metadata file (written last) exists and its checksum holds.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from synthgap.config import save_config
from synthgap.data.cache import default_cache_dir
from synthgap.errors import SynthgapError
from synthgap.experiments.backends import Backend, LocalBackend, shared_folders
from synthgap.experiments.checks import data_references, open_spec_sources
from synthgap.experiments.examples import EXAMPLES_FILE, write_examples
from synthgap.experiments.execute import committed_record
from synthgap.experiments.identity import fingerprints, what_changed
from synthgap.experiments.plan import follow_ups, plan
from synthgap.experiments.results import (
    RESULTS_FILE,
    SUPERSEDED_FILE,
    ResultRecord,
    append_result,
    read_results,
    recorded_fingerprints,
)
from synthgap.experiments.runs import Run, RunContext
from synthgap.experiments.spec import ExperimentSpec
from synthgap.experiments.store import DataStore, ModelCache
from synthgap.io import atomic_write_json, atomic_write_text, read_jsonl
from synthgap.progress import Progress, progress_bar

RUN_FILE = "run.json"


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """One writer per output folder; the OS drops the lock when the process dies, even by SIGKILL. A folder this call
    created and that holds nothing but the lock when it ends (a run that failed before writing) is removed again."""
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(folder / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SynthgapError(
                    f"another synthgap process is running in {folder}; wait for it to finish or use another --out"
                ) from None
            yield
    finally:
        if created and [p.name for p in folder.iterdir()] == [".lock"]:
            (folder / ".lock").unlink(missing_ok=True)
            folder.rmdir()


def run_experiment(
    spec: ExperimentSpec,
    out: Path,
    *,
    model_cache: Path | None = None,
    progress: bool = True,
    rerun_changed: bool = False,
    keep_going: bool = False,
    device: torch.device | None = None,
    backend: Backend | None = None,
) -> list[ResultRecord]:
    """Run every unfinished run of `spec` into `out` (results.jsonl, runs/<name>/) and return all results.

    `backend` decides where runs execute (default: one after another in this process); this function decides
    which runs, in what order (a run starts once the runs it needs are recorded), and records them."""
    out = Path(out)
    runs = plan(spec)
    with exclusive(out):
        for stale in out.glob(".*.tmp"):  # left by a process killed mid-write (a file, or a report's figures)
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        store = DataStore(spec, progress)
        open_spec_sources(spec, store, runs)  # class lists and sizes, before any decoding or training
        runs += _new_follow_ups(spec, out, runs)  # an adaptive sweep's recorded runs belong to the plan too
        backend = backend or LocalBackend(device=device)
        prints = fingerprints(runs, spec, store, backend.compute)
        settle_recorded(out, prints, rerun_changed)
        save_config(spec, out / "spec.yaml")  # every record now belongs to this spec's runs and settings
        read = {use.ref for use in data_references(spec, runs)}
        if {spec.data.real, spec.data.synthetic} <= read and not (out / EXAMPLES_FILE).exists():
            write_examples(store, out)  # the report's picture of both sides' training images
        models = ModelCache(model_cache or default_cache_dir() / "models")
        device = device or torch.device(backend.compute.device)
        ctx = RunContext(
            spec, store, models, out, device, progress, compute=backend.compute, gpu_share=backend.gpu_share
        )
        for folder in shared_folders(ctx).values():
            folder.mkdir(parents=True, exist_ok=True)
        try:
            while True:  # one round, plus one per round an adaptive sweep asks for
                ctx.fingerprints.update({name: fp for name, (fp, _) in prints.items()})
                done = recorded_fingerprints(out)
                todo = [run for run in runs if run.name not in done]
                failed = _run_all(todo, set(done), ctx, prints, backend, keep_going=keep_going, total=len(runs))
                new = [] if failed else _new_follow_ups(spec, out, runs)
                if not new:
                    break
                runs += new
                prints = fingerprints(new, spec, store, backend.compute, known=prints)
        finally:
            backend.close()
    if failed:
        raise SynthgapError(f"{len(failed)} run(s) failed and were not recorded: " + "; ".join(failed))
    return read_results(out)


def _new_follow_ups(spec: ExperimentSpec, out: Path, runs: list[Run]) -> list[Run]:
    """Runs adaptive blocks choose from what `out` records, that are not planned yet."""
    planned = {run.name for run in runs}
    return [run for run in follow_ups(spec, read_results(out)) if run.name not in planned]


def _run_all(
    todo: list[Run],
    done: set[str],
    ctx: RunContext,
    prints: dict[str, tuple[str, dict]],
    backend: Backend,
    *,
    keep_going: bool,
    total: int,
) -> list[str]:
    """Start every run of `todo` once the runs it needs are recorded, as many at once as the backend takes, and
    record each as it ends; returns one line per failed run (only with `keep_going`)."""
    pending = list(todo)
    in_flight: dict[Any, Run] = {}
    failed: dict[str, str] = {}
    bar = progress_bar(total, initial=total - len(todo), desc=ctx.spec.name, unit="run", enabled=ctx.progress)
    while pending or in_flight:
        for run in list(pending):
            needs = [need.name for need in run.needs()]
            if any(name in failed for name in needs):
                failed[run.name] = f"{run.name}: skipped, it needs {', '.join(n for n in needs if n in failed)}"
                pending.remove(run)
            elif all(name in done for name in needs) and len(in_flight) < backend.slots:
                pending.remove(run)
                fingerprint, settings = prints[run.name]
                record = committed_record(ctx.run_dir(run), fingerprint)
                if record is not None:  # executed before the driver was stopped: record it, run nothing
                    _record(ctx, run, record, done, bar)
                    continue
                atomic_write_json(
                    ctx.run_dir(run) / RUN_FILE,
                    {"run": run.name, "spec": ctx.spec.name, "fingerprint": fingerprint, "settings": settings},
                )
                bar.set_postfix_str(run.name)
                in_flight[backend.submit(run, ctx, fingerprint)] = run
        if not in_flight:
            break  # what is left waits for failed runs only
        for handle in backend.wait(list(in_flight)):
            run = in_flight.pop(handle)
            outcome = backend.outcome(handle)
            if outcome.record is not None:
                _record(ctx, run, outcome.record, done, bar)
            elif outcome.diverged and keep_going:
                failed[run.name] = outcome.error
            else:
                raise SynthgapError(outcome.error)
    bar.close()
    return list(failed.values())


def _record(ctx: RunContext, run: Run, record: ResultRecord, done: set[str], bar: Progress) -> None:
    append_result(ctx.out, record)
    done.add(run.name)
    bar.update(1)


def settle_recorded(out: Path, planned: dict[str, tuple[str, dict]], rerun_changed: bool) -> None:
    """Make sure every record in `out` is a planned run with its current fingerprint: stop with the changed settings
    named, or (`rerun_changed`) move the other records to superseded.jsonl so their runs run again."""
    recorded = recorded_fingerprints(out)
    changed = sorted(name for name, fp in recorded.items() if name in planned and fp != planned[name][0])
    unplanned = sorted(name for name in recorded if name not in planned)
    if not changed and not unplanned:
        return
    if rerun_changed:
        supersede(out, set(changed) | set(unplanned))
        return
    problems = []
    if changed:
        first = changed[0]
        problems.append(
            f"{len(changed)} recorded run(s) were made with other settings, e.g. {first}: "
            f"{what_changed(out / 'runs' / first / RUN_FILE, recorded[first], *planned[first])}"
        )
    if unplanned:
        problems.append(f"{len(unplanned)} recorded run(s) are not part of this spec, e.g. {unplanned[0]}")
    raise SynthgapError(
        f"{out}: " + "; ".join(problems) + ". Use a new --out, or --rerun-changed to move those "
        f"records to {SUPERSEDED_FILE} (and run them again where the spec plans them)"
    )


def supersede(out: Path, names: set[str]) -> None:
    """Move the records of `names` from results.jsonl to superseded.jsonl, and their run folders aside."""
    lines = read_jsonl(out / RESULTS_FILE)
    moving = [r for r in lines if r["run"] in names]
    old = read_jsonl(out / SUPERSEDED_FILE)
    seen = {(r["run"], r.get("fingerprint")) for r in old}
    kept_old = [json.dumps(r, sort_keys=True) for r in old]
    new = [json.dumps(r, sort_keys=True) for r in moving if (r["run"], r.get("fingerprint")) not in seen]
    atomic_write_text(out / SUPERSEDED_FILE, "".join(line + "\n" for line in kept_old + new))
    atomic_write_text(
        out / RESULTS_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in lines if r["run"] not in names)
    )
    for record in moving:
        folder = out / "runs" / record["run"]
        if folder.is_dir():
            target = out / "superseded" / f"{record['run']}.{record.get('fingerprint') or 'unknown'}"
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            folder.rename(target)
