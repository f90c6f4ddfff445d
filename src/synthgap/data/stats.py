"""Per-channel mean and standard deviation of a data set, on the 0..1 scale the normalization uses.

synthgap data stats cifake:synthetic

Statistics are measured on the decoded images at the training resolution (what the student sees) and kept in a
small JSON file keyed on the decoded set, so asking again costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

from synthgap.data.cache import default_cache_dir
from synthgap.data.config import DataPrep, load_index, load_split, subset_positions
from synthgap.data.sources import open_source
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import Normalization, center_crop
from synthgap.errors import SynthgapError
from synthgap.io import atomic_write_json

CHUNK = 4096  # images per step: bounded memory for large sets


def channel_stats(images: torch.Tensor) -> Normalization:
    """Mean and (population) std per channel of uint8 images N×3×H×W, accumulated in float64."""
    if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ValueError(f"expected a non-empty N×3×H×W image tensor, got shape {tuple(images.shape)}")
    return _chunk_stats(images[start : start + CHUNK] for start in range(0, len(images), CHUNK))


def _chunk_stats(chunks: Iterable[torch.Tensor]) -> Normalization:
    """`channel_stats` accumulated over chunks of uint8 images (memory: one chunk)."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    count = 0
    for images in chunks:
        chunk = images.to(torch.float64) / 255.0
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
        count += images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp(min=0).sqrt()
    if (std == 0).any():
        raise SynthgapError(
            f"a colour channel is constant in these images (std {_rounded(std)}): its statistics cannot normalize them"
        )
    return Normalization(_rounded(mean), _rounded(std))


def _rounded(values: torch.Tensor) -> tuple[float, float, float]:
    a, b, c = (round(v, 6) for v in values.tolist())  # stable text in configs and cache keys
    return a, b, c


def stats_path(images: ImageTensors, cache_dir: Path | None = None) -> Path:
    if not images.key:
        raise ValueError("images without a key cannot be cached")
    safe = images.key.replace(":", "-")
    return Path(cache_dir or default_cache_dir()) / "stats" / f"{safe}.json"


def dataset_stats(images: ImageTensors, cache_dir: Path | None = None) -> Normalization:
    """`channel_stats` of a decoded set, read from / written to the stats cache."""
    path = stats_path(images, cache_dir)
    if path.exists():
        stored = json.loads(path.read_text())
        return Normalization(tuple(stored["mean"]), tuple(stored["std"]))
    if not len(images):
        raise ValueError("no images to measure")
    # chunk by chunk through `gather` (a subset of a memory-mapped cache is never copied whole), each image as the
    # student sees it: the centre crop when it is stored larger
    chunks = (images.gather(slice(start, start + CHUNK)) for start in range(0, len(images), CHUNK))
    stats = _chunk_stats(center_crop(chunk, images.resolution) for chunk in chunks)
    atomic_write_json(path, {"mean": list(stats.mean), "std": list(stats.std), "images": len(images)})
    return stats


def source_stats(
    prep: DataPrep, ref: str, split: str = "train", per_class: int | None = None, progress: bool = True
) -> tuple[Normalization, int]:
    """Statistics of one data reference's split (cut to `per_class` when given) and how many images they cover.

    With `per_class`, only the chosen images are decoded (the subset is drawn from the index with the spec's subset
    seed, as `load_split` draws it from a decoded set without skipped images), not the whole side first."""
    if per_class is None:
        images = load_split(prep, ref, split, per_class, progress)
        return dataset_stats(images, prep.cache_dir), len(images)
    index = open_source(ref, split, prep.data_root)
    positions = subset_positions(prep, index.labels, index.classes, per_class)
    images = load_index(prep, index if positions is None else index.select(positions), progress)
    return dataset_stats(images, prep.cache_dir), len(images)
