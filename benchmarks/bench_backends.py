"""`ray_sweep_speedup`: one small CIFAKE layer sweep on the local backend (one process, one thread) and on the Ray
backend (two single-thread workers), the same spec, fresh model caches; the records must be identical.

    SYNTHGAP_DATA_ROOT=../shared/data .venv/bin/python benchmarks/bench_backends.py

Target: ≥ 1.7× on 2 cores. Ray's start (about 5–10 s here) counts against it, as it would for a user.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synthgap.config import validate  # noqa: E402
from synthgap.experiments.backends import RayBackend, Resources  # noqa: E402
from synthgap.experiments.runner import run_experiment  # noqa: E402
from synthgap.experiments.spec import ExperimentSpec  # noqa: E402

SPEC = {
    "name": "bench-backends",
    "data": {"per_class": 600, "test_per_class": 100},
    "model": {"width": 0.5},
    "recipe": {"epochs": 3, "batch_size": 64},
    "seeds": [0],
    "experiments": [
        {"kind": "baseline"},
        {"kind": "layer_transfer", "n": [0, 4, 8, 12, 16], "augmentation": "none"},
    ],
}


def timed_sweep(spec: ExperimentSpec, folder: Path, backend=None) -> tuple[float, dict]:
    start = time.perf_counter()
    records = run_experiment(spec, folder / "out", model_cache=folder / "models", progress=False, backend=backend)
    return time.perf_counter() - start, {r.run: (r.top1, r.top5) for r in records}


def main() -> None:
    import ray

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # decoded once beforehand, so neither side pays for decoding
        os.environ["SYNTHGAP_CACHE_DIR"] = str(tmp / "cache")
        spec = validate(ExperimentSpec, {**SPEC, "data": {**SPEC["data"], "cache_dir": str(tmp / "cache")}})
        run_experiment(
            validate(
                ExperimentSpec, {**spec.model_dump(mode="json"), "experiments": [{"kind": "baseline", "seeds": [99]}]}
            ),
            tmp / "warm",
            model_cache=tmp / "warm-models",
            progress=False,
        )
        local_s, local = timed_sweep(spec, tmp / "local")
        ray_s, remote = timed_sweep(spec, tmp / "ray", RayBackend(Resources(cpus=1), address=None, workers=2))
        ray.shutdown()
    runs = len(local)
    print(f"ray_sweep_local_s: {local_s:.1f} s ({runs} runs, 1 process, 1 thread)")
    print(f"ray_sweep_ray_s: {ray_s:.1f} s (2 single-thread Ray workers, Ray start included)")
    print(f"ray_sweep_records_identical: {local == remote}")
    print(f"ray_sweep_speedup: {local_s / ray_s:.2f} x (target >= 1.7)")


if __name__ == "__main__":
    main()
