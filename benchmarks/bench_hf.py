"""Decoding an `hf:` parquet set against the same images as files.

5,000 CIFAKE real training images, evenly spaced over the classes, are written once into a parquet file (their
JPEG bytes, as `datasets` stores an Image column) in a temporary folder. Each repeat decodes both sides cold
(`load_images` into a fresh cache folder: read, decode, write the cache, checksum) at 32 px with one decoding worker
per core; the sides alternate (files, hf, files, hf, ...) so load on a shared machine hits both alike. Reported: each
side's best img/s, the median of the per-pair ratios hf/files with its range, and the one-time cost of the first
`hf:` open (`load_dataset` converting the parquet file to Arrow), which is not part of the decode.

    python -m benchmarks.bench_hf [--images N] [--repeats K]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import report
from synthgap.data.cache import load_images
from synthgap.data.index import LabelledIndex
from synthgap.data.sources import open_source
from synthgap.generate.quiet import library_bars_off


def parquet_copy(index: LabelledIndex, folder: Path) -> Path:
    """The images of `index` as one parquet file of JPEG bytes with a ClassLabel, as `datasets` writes it."""
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(index.classes))})
    rows = {"image": [{"bytes": p.read_bytes(), "path": p.name} for p in index.paths],
            "label": index.labels.tolist()}  # fmt: skip
    target = folder / "parquet"
    target.mkdir()
    with library_bars_off("datasets"):  # its "Creating parquet" bar would land in the benchmark's log
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(target / "train.parquet"))
    return target


def decode_seconds(index: LabelledIndex, cache: Path) -> float:
    start = time.perf_counter()
    load_images(index, 32, cache_dir=cache, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args([] if __name__ != "__main__" else None)  # defaults when make bench calls main()
    files = open_source("cifake:real", "train")
    files = files.select(np.linspace(0, len(files) - 1, min(args.images, len(files))).astype(np.int64))  # all classes
    with tempfile.TemporaryDirectory(prefix="synthgap-bench-hf-") as tmp:
        folder = Path(tmp)
        parquet = parquet_copy(files, folder)
        start = time.perf_counter()
        hf = open_source(f"hf:{parquet}", "train")  # the first open converts the parquet file to Arrow, once
        first_open = time.perf_counter() - start
        assert len(hf) == len(files) and hf.labels.tolist() == files.labels.tolist()
        file_times, hf_times = [], []
        for repeat in range(args.repeats):
            file_times.append(decode_seconds(files, folder / f"cache-files-{repeat}"))
            hf_times.append(decode_seconds(hf, folder / f"cache-hf-{repeat}"))
    ratios = [f / h for f, h in zip(file_times, hf_times, strict=True)]  # hf throughput / files throughput
    report("decode_files_img_per_s", len(files) / min(file_times), "img/s (cold load_images, 32 px, best)")
    report("decode_hf_parquet_img_per_s", len(files) / min(hf_times), "img/s (cold load_images, 32 px, best)")
    report("hf_first_open_s", first_open, "s (index the parquet set: load_dataset's one-time Arrow conversion)")
    report("decode_hf_vs_files", statistics.median(ratios), f"x median of {len(ratios)} interleaved pairs "
           f"(range {min(ratios):.2f}-{max(ratios):.2f}; target >= 0.8)")  # fmt: skip


if __name__ == "__main__":
    main()
