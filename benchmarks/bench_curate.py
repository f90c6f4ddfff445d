"""CLIP scoring throughput of `synthgap curate` (decode, preprocess, image tower, softmax over the class prompts).

- clip_scoring_img_per_s: images scored per second by `synthgap.generate.curate.clip_probabilities`, the tiny
  random-weight CLIP (32 px towers) on this machine's device, over 1,000 CIFAKE synthetic images (random 32 px PNGs
  where no data root is set), batches of 64, best of 3 runs. With `SYNTHGAP_BENCH_CLIP` set to a local CLIP folder
  (e.g. a cached openai/clip-vit-base-patch32 snapshot) it times that model instead, on CUDA when present.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_curate.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report  # noqa: E402
from synthgap.generate.curate import clip_probabilities, resolve_clip  # noqa: E402
from synthgap.generate.tiny import save_tiny_clip  # noqa: E402

IMAGES = 1000
BATCH = 64
REPEATS = 3
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def bench_images(folder: Path) -> list[Path]:
    """CIFAKE's synthetic training images when a data root is set, else random 32 px PNGs written to `folder`."""
    from synthgap.data.sources import open_source

    if os.environ.get("SYNTHGAP_DATA_ROOT"):
        return [Path(p) for p in open_source("cifake:synthetic", "train").paths[:IMAGES]]
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(IMAGES):
        path = folder / f"{i:05d}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = os.environ.get("SYNTHGAP_BENCH_CLIP") or str(save_tiny_clip(Path(tmp) / "tiny-clip"))
        clip = resolve_clip(model)
        images = bench_images(Path(tmp))
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            probabilities = clip_probabilities(clip, images, CLASSES, ("a photo of a {name}.",), batch_size=BATCH,
                                               progress=False)  # fmt: skip
            best = min(best, time.perf_counter() - start)
        assert probabilities.shape == (len(images), len(CLASSES))
        report("clip_scoring_img_per_s", len(images) / best, "img/s")


if __name__ == "__main__":
    main()
