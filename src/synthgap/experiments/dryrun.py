"""`synthgap run --dry-run`: check a spec and its data layout without decoding or training anything."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from synthgap.data.index import check_same_classes
from synthgap.data.sources import open_source
from synthgap.experiments.plan import plan
from synthgap.experiments.results import finished_runs
from synthgap.experiments.spec import ExperimentSpec


def dry_run_report(spec: ExperimentSpec, out: Path) -> str:
    runs = plan(spec)
    done = finished_runs(out)
    lines = [f"spec {spec.name!r}: valid"]
    uses = [(ref, "train") for ref in spec.training_refs()] + [(spec.data.test, "test")]
    indexes = {f"{ref} ({split})": open_source(ref, split, spec.data.data_root) for ref, split in uses}
    first = next(iter(indexes.values()))
    for name, index in indexes.items():
        check_same_classes(first.classes, index.classes, what=f"{first.name} and {index.name}")
        smallest = min(index.counts().values())
        lines.append(f"  data {name}: {len(index)} images, {len(index.classes)} classes, smallest class {smallest}")
    if spec.data.per_class is not None:
        for name, index in list(indexes.items())[:-1]:
            if min(index.counts().values()) < spec.data.per_class:
                lines.append(f"  warning: {name} has a class with fewer than per_class={spec.data.per_class} images")
    kinds = Counter(run.kind for run in runs)
    lines.append(f"  runs: {len(runs)} ({', '.join(f'{k} {v}' for k, v in kinds.items())}); "
                 f"{len(done & {r.name for r in runs})} already finished in {out}")  # fmt: skip
    return "\n".join(lines)
