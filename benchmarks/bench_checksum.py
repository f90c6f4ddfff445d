"""What the decoded-image cache's checksum costs: verifying a cache file vs decoding it cold vs a warm cached read.

On the CIFAKE training set (real and synthetic sides, 32 px), into a fresh cache folder:
- cold: `load_images` on an empty cache (decode every JPEG, write the file, hash it once for its checksum file);
- warm: `load_images` again (verify the checksum, then load the tensors);
- verify: the checksum check alone (size + streamed SHA-256 of the file, page cache warm);
- parse: loading the tensors alone, without the check.

Run: `SYNTHGAP_DATA_ROOT=../shared/data .venv/bin/python -m benchmarks.bench_checksum`. A cold decode of the full
set takes minutes on two cores, so it is measured once; the other figures are the best of three.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from synthgap.data import cache
from synthgap.data.cache import load_images
from synthgap.data.sources import open_source
from synthgap.io import file_digest, verify_file

SIDES = ("cifake:real", "cifake:synthetic")
RESOLUTION = 32


def best_seconds(work, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def hash_rate(path: Path, algorithm: str) -> float:
    """MB/s of a streamed hash over `path` (1 MiB chunks, one buffer) with `algorithm`."""

    return path.stat().st_size / 1e6 / best_seconds(lambda: file_digest(path, algorithm))


def measure_side(source: str, cache_dir: Path) -> dict[str, float]:
    index = open_source(source, "train")
    start = time.perf_counter()
    key = load_images(index, RESOLUTION, cache_dir=cache_dir, progress=False).key
    cold = time.perf_counter() - start
    path = cache_dir / f"{key}.safetensors"
    record = json.loads(cache.checksum_path(path).read_text())
    return {
        "images": len(index),
        "megabytes": path.stat().st_size / 1e6,
        "cold": cold,
        "warm": best_seconds(lambda: load_images(index, RESOLUTION, cache_dir=cache_dir, progress=False)),
        "verify": best_seconds(lambda: verify_file(path, record)),
        "parse": best_seconds(lambda: cache.parse_cache(path, index.classes)),
        "sha256_mb_s": hash_rate(path, "sha256"),
        "blake2b_mb_s": hash_rate(path, "blake2b"),
    }


def main() -> None:
    if not os.environ.get("SYNTHGAP_DATA_ROOT"):
        raise SystemExit("benchmarks need CIFAKE: set SYNTHGAP_DATA_ROOT (make bench defaults it to ../shared/data)")
    with tempfile.TemporaryDirectory(prefix="synthgap-bench-checksum-") as folder:
        rows = {side: measure_side(side, Path(folder) / side.replace(":", "-")) for side in SIDES}
    header = ("side", "images", "MB", "cold s", "warm s", "verify s", "parse s", "verify/cold", "verify/warm")
    print(f"{header[0]:18} " + " ".join(f"{name:>11}" for name in header[1:]))
    for side, row in rows.items():
        cells = (
            f"{row['images']:d}",
            f"{row['megabytes']:.1f}",
            f"{row['cold']:.2f}",
            f"{row['warm']:.3f}",
            f"{row['verify']:.3f}",
            f"{row['parse']:.3f}",
            f"{100 * row['verify'] / row['cold']:.2f}%",
            f"{100 * row['verify'] / row['warm']:.1f}%",
        )
        print(f"{side:18} " + " ".join(f"{cell:>11}" for cell in cells))
    cold = sum(r["cold"] for r in rows.values())
    verify = sum(r["verify"] for r in rows.values())
    warm = sum(r["warm"] for r in rows.values())
    report("checksum_verify_vs_cold_pct", 100 * verify / cold, "% (target < 5)")
    report("checksum_verify_vs_warm_pct", 100 * verify / warm, "% of a warm cached read")
    report("checksum_sha256_mb_per_s", min(r["sha256_mb_s"] for r in rows.values()), "MB/s")
    report("checksum_blake2b_mb_per_s", min(r["blake2b_mb_s"] for r in rows.values()), "MB/s")


if __name__ == "__main__":
    main()
