"""Test-time augmentation on trained students: each from-scratch baseline of a results folder tested again on its
spec's test set under every policy of `synthgap.train.tta`, from the model cache, without training.

    SYNTHGAP_DATA_ROOT=../shared/data python -m benchmarks.bench_tta runs/cifake-gap     # ~1 min a student, 2 cores

Not part of `make bench`: it needs a folder whose students are still in the model cache (`--model-cache`, default
the one `synthgap run` uses). The cache entry is read through its checksum, and the record's own policy is measured
first: it must give the record's top-1 to the last digit (same weights, same test images, same arithmetic), or the
script stops, since the other policies would then not describe the recorded student.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.common import report
from synthgap import api
from synthgap.data.cachedir import default_cache_dir
from synthgap.experiments.results import read_results
from synthgap.experiments.store import DataStore, ModelCache
from synthgap.train.compute import processor_kind
from synthgap.train.loaders import eval_loader
from synthgap.train.loop import measure
from synthgap.train.tta import TTA_VIEWS


def policies_of(folder: Path, cache: Path) -> list[dict]:
    """One row per baseline record and policy: top-1, top-5 and seconds."""
    spec = api.experiment_spec(folder / "spec.yaml")
    store = DataStore(spec, progress=False)
    test = store.test()
    models = ModelCache(cache)
    config = spec.model.model_copy(update={"num_classes": len(test.classes), "image_size": spec.data.resolution})
    loader = eval_loader(test, spec.recipe)
    rows = []
    for record in read_results(folder):
        if record.kind != "baseline" or not getattr(record, "model_key", None):
            continue
        model, _ = models.load(record.model_key, config)
        own = record.tta or "none"
        # the record's own policy first: the others are worth nothing unless it reproduces the recorded top-1
        measured = {}
        for policy in (own, *(name for name in TTA_VIEWS if name != own)):
            start = time.perf_counter()
            result = measure(model, loader, precision=spec.recipe.precision, tta=policy)
            measured[policy] = (result, time.perf_counter() - start)
            if policy == own and round(result.top1, 4) != record.top1:
                raise SystemExit(
                    f"{record.run}: the cached student tests at {result.top1:.4f} with tta {record.tta}, its record "
                    f"says {record.top1}: not the recorded student, or another arithmetic"
                )
        for policy in TTA_VIEWS:
            result, seconds = measured[policy]
            rows.append(
                {
                    "run": record.run,
                    "tta": policy,
                    "top1": round(result.top1, 2),
                    "top5": round(result.top5, 2),
                    "seconds": round(seconds, 1),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a results folder (spec.yaml, results.jsonl) of `synthgap run`")
    parser.add_argument("--model-cache", type=Path, default=None, help="the model cache its students are in")
    args = parser.parse_args()
    rows = policies_of(args.folder, args.model_cache or default_cache_dir() / "models")
    if not rows:
        raise SystemExit(f"{args.folder}: no from-scratch baseline with a cached student")
    print(f"processor: {processor_kind()}, {torch.get_num_threads()} threads")
    for row in rows:
        report(f"{row['run']} tta={row['tta']} top1", row["top1"], "%")
        report(f"{row['run']} tta={row['tta']} top5", row["top5"], "%")
        report(f"{row['run']} tta={row['tta']} seconds", row["seconds"], "s")


if __name__ == "__main__":
    main()
