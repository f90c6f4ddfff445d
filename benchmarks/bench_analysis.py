"""`synthgap analyze` against the layer sweep it explains (target: at most 5 % of the sweep's time).

    .venv/bin/python -m benchmarks.bench_analysis DIR [--model-cache MODELS] [--probe-per-class 100] [--max-images 2500]

DIR is an experiment folder written by `synthgap run` with R and S baselines and a layer sweep. Its results.jsonl
and spec.yaml are copied into a temporary folder, which `analyze` then reads and writes (the experiment folder is
left as it is). Prints the seconds of `analyze` (data from the disk cache, models from the model cache, every
measure), the sum of the layer-transfer records' `seconds`, and their ratio. Not part of `make bench`: it needs a
finished experiment.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import report
from synthgap.analysis import analyze, read_analysis
from synthgap.analysis.analyze import MAX_IMAGES
from synthgap.experiments.kinds.layer_transfer import TransferRecord
from synthgap.experiments.results import RESULTS_FILE, read_results


def sweep_seconds(folder: Path) -> tuple[float, int]:
    """(sum of the layer-transfer records' seconds, how many records)."""
    transfers = [r for r in read_results(folder) if isinstance(r, TransferRecord)]
    return sum(r.seconds for r in transfers), len(transfers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model-cache", type=Path, default=None)
    parser.add_argument("--probe-per-class", type=int, default=100)
    parser.add_argument("--max-images", type=int, default=MAX_IMAGES, help="0: all images")
    args = parser.parse_args(argv)
    sweep, runs = sweep_seconds(args.folder)
    if not runs:
        raise SystemExit(f"{args.folder}: no layer-transfer records to compare with")
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, cuda={torch.cuda.is_available()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        work = Path(tmp)
        for name in (RESULTS_FILE, "spec.yaml"):
            shutil.copy(args.folder / name, work / name)
        start = time.perf_counter()
        analyze(
            work,
            model_cache=args.model_cache,
            probe_per_class=args.probe_per_class,
            max_images=args.max_images or None,
            progress=False,
        )
        seconds = time.perf_counter() - start
        rows = read_analysis(work)
    report("analysis_s", seconds, f"s ({len(rows)} rows, layers 1..{rows[0].num_layers}, {rows[0].model})")
    report("layer_sweep_s", sweep, f"s (sum of {runs} layer-transfer records' seconds)")
    report("analysis_vs_sweep_pct", 100.0 * seconds / sweep, "% (target <= 5)")


if __name__ == "__main__":
    main()
