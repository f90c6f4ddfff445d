"""`synthgap run --dry-run`: check a spec and its data layout without decoding or training anything.

Everything a run would reject later is rejected here, with the same message: the spec itself (validated when
loaded), the class lists of every side, and whether every side has `per_class` images in each class. An adaptive
layer sweep (n: auto) chooses its students from results, so only a bound on their number can be given beforehand.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from synthgap.experiments.checks import open_spec_sources
from synthgap.experiments.identity import fingerprints
from synthgap.experiments.kinds.layer_transfer import LayerTransferBlock
from synthgap.experiments.plan import plan
from synthgap.experiments.results import recorded_fingerprints
from synthgap.experiments.spec import ExperimentSpec
from synthgap.experiments.store import DataStore
from synthgap.models import get_family
from synthgap.train.compute import Compute


def dry_run_report(spec: ExperimentSpec, out: Path, compute: Compute) -> str:
    """What `run` would do with `spec` into `out`, its runs computing with `compute` (the backend's)."""
    runs = plan(spec)
    lines = [f"spec {spec.name!r}: valid"]
    for name, index in open_spec_sources(spec).items():
        smallest = min(index.counts().values())
        lines.append(f"  data {name}: {len(index)} images, {len(index.classes)} classes, smallest class {smallest}")
    prints = fingerprints(runs, spec, DataStore(spec, progress=False), compute)
    recorded = recorded_fingerprints(out)
    finished = sum(1 for run in runs if recorded.get(run.name) == prints[run.name][0])
    changed = sum(1 for run in runs if run.name in recorded and recorded[run.name] != prints[run.name][0])
    kinds = Counter(run.kind for run in runs)
    lines.append(
        f"  runs: {len(runs)} ({', '.join(f'{k} {v}' for k, v in kinds.items())}); {finished} already finished in {out}"
    )
    lines += adaptive_lines(spec)
    if changed:
        lines.append(
            f"  warning: {changed} recorded run(s) in {out} were made with other settings "
            "(a run stops on them unless --rerun-changed)"
        )
    return "\n".join(lines)


def adaptive_students_bound(levels: int, num_layers: int, budget: int | None) -> int:
    """At most this many students per seed for an adaptive sweep over N = 0..L (`num_layers` = L) with `levels`
    levels: bisecting 0..L takes ⌈log2 L⌉ students per level (fewer where levels share them), only N = 1..L−1 are
    ever trained (L − 1 students), and `budget` caps the rest."""
    per_level = (num_layers - 1).bit_length()  # ⌈log2 L⌉, exact in integers
    bound = min(levels * per_level, num_layers - 1)
    return bound if budget is None else min(bound, budget)


def adaptive_lines(spec: ExperimentSpec) -> list[str]:
    """A line per adaptive (n: auto) layer-transfer block: the most synthetic→real students it will train."""
    lines = []
    num_layers = get_family(spec.model.name).num_layers
    for number, block in enumerate(spec.experiments, 1):
        if not (isinstance(block, LayerTransferBlock) and block.adaptive):
            continue
        seeds = len(block.seeds if block.seeds is not None else spec.seeds)
        per_seed = adaptive_students_bound(len(block.levels), num_layers, block.budget)
        steps = (num_layers - 1).bit_length()
        cap = "no budget" if block.budget is None else f"budget {block.budget}"
        lines.append(
            f"  adaptive block {number} (layer_transfer, n: auto): at most {per_seed} synthetic→real students per "
            f"seed, {per_seed * seeds} in all ({seeds} seed(s)) — an upper bound: {len(block.levels)} level(s) × "
            f"⌈log2 {num_layers}⌉ = {steps} bisection steps, at most {num_layers - 1} values of N, {cap}; chosen "
            "round by round after the baselines, so not counted in runs above"
        )
    return lines
