"""`synthgap run --dry-run`: check a spec and its data layout without decoding or training anything.

Everything a run would reject later is rejected here, with the same message: the spec itself (validated when
loaded), the class lists of every side, and whether every side has `per_class` images in each class. An adaptive
layer sweep (n: auto) chooses its students from results, so only a bound on their number can be given beforehand
(its kind's `later` hook says it).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from synthgap.experiments.checks import open_spec_sources
from synthgap.experiments.identity import fingerprints
from synthgap.experiments.kinds import kind_of_block
from synthgap.experiments.plan import block_seeds, plan
from synthgap.experiments.results import recorded_fingerprints
from synthgap.experiments.spec import ExperimentSpec
from synthgap.experiments.store import DataStore
from synthgap.train.compute import Compute


def dry_run_report(spec: ExperimentSpec, out: Path, compute: Compute, progress: bool = False) -> str:
    """What `run` would do with `spec` into `out`, its runs computing with `compute` (the backend's). Finding which
    runs are recorded identifies each data set, which reads its images the first time (`progress`: say so)."""
    runs = plan(spec)
    lines = [f"spec {spec.name!r}: valid"]
    store = DataStore(spec, progress=progress)
    for name, index in open_spec_sources(spec, store, runs).items():
        smallest = min(index.counts().values())
        lines.append(f"  data {name}: {len(index)} images, {len(index.classes)} classes, smallest class {smallest}")
    recorded = recorded_fingerprints(out)  # first: a damaged results file is told before any image is read
    prints = fingerprints(runs, spec, store, compute)
    finished = sum(1 for run in runs if recorded.get(run.name) == prints[run.name][0])
    changed = sum(1 for run in runs if run.name in recorded and recorded[run.name] != prints[run.name][0])
    kinds = Counter(run.kind for run in runs)
    lines.append(
        f"  runs: {len(runs)} ({', '.join(f'{k} {v}' for k, v in kinds.items())}); {finished} already finished in {out}"
    )
    if compute.processes > 1:
        lines.append(
            f"  each run trains its students in {compute.processes} processes (DistributedDataParallel on "
            f"{compute.device}, {compute.threads} thread(s) each)"
        )
    lines += later_lines(spec)
    if changed:
        lines.append(
            f"  warning: {changed} recorded run(s) in {out} were made with other settings "
            "(a run stops on them unless --rerun-changed)"
        )
    return "\n".join(lines)


def later_lines(spec: ExperimentSpec) -> list[str]:
    """A line per block whose runs are chosen from results (its kind's `later`): how many it may still add."""
    lines = []
    for number, block in enumerate(spec.experiments, 1):
        later = kind_of_block(block).later
        told = later(block, block_seeds(block, spec), spec) if later is not None else None
        if told:
            setting, bound = told
            lines.append(f"  adaptive block {number} ({block.kind}, {setting}): {bound}")
    return lines
