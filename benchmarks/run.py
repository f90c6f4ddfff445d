"""`make bench`: every benchmark, one `name: value` line per figure. Results are recorded in benchmarks/README.md."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_data, bench_generate, bench_hf, bench_startup, bench_train, bench_transfer  # noqa: E402


def main() -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, cuda={torch.cuda.is_available()}",
        flush=True,
    )
    for bench in (bench_startup, bench_data, bench_hf, bench_train, bench_transfer, bench_generate):
        bench.main()


if __name__ == "__main__":
    main()
