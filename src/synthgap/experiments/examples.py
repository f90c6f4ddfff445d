"""A few training images of each class from both sides, saved next to the results so the report can show them.

`write_examples(store, out)` writes `out/examples.safetensors`: tensors `real` and `synthetic`, uint8
C×k×3×size×size (the first k training images of each class in index order, resized to size×size), and in the
metadata the class list, k, the size and how many images each class really had (a class with fewer than k images
is padded with black images that the report leaves blank). The report reads only files in the experiment folder, so
the pictures have to be there; they are a few hundred kilobytes even for 100 classes.

Writing works on torch tensors (the store's images); `read_examples` uses numpy only, so drawing a report never
imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

from synthgap.io import save_safetensors

if TYPE_CHECKING:
    import torch

    from synthgap.data.tensors import ImageTensors
    from synthgap.experiments.spec import Side

EXAMPLES_FILE = "examples.safetensors"
SIDES: tuple[Side, Side] = ("real", "synthetic")


class TrainImages(Protocol):
    """What `write_examples` needs of the experiment's `DataStore`."""

    def train(self, side: Side) -> ImageTensors: ...


@dataclass(frozen=True)
class Examples:
    """What `read_examples` returns: per side a uint8 C×k×3×size×size array and per class the number of real
    images in it (the rest of the k slots are padding)."""

    classes: tuple[str, ...]
    images: dict[str, np.ndarray]  # side -> C×k×3×size×size
    counts: dict[str, list[int]]  # side -> images per class actually present (≤ k)

    @property
    def per_class(self) -> int:
        return int(self.images[SIDES[0]].shape[1])


def class_examples(images: ImageTensors, per_class: int, size: int) -> tuple[torch.Tensor, list[int]]:
    """The first `per_class` images of each class (index order) as uint8 C×k×3×size×size, and how many each had."""
    import torch

    out = torch.zeros((len(images.classes), per_class, 3, size, size), dtype=torch.uint8)
    counts = []
    for label in range(len(images.classes)):
        positions = torch.nonzero(images.labels == label).flatten()[:per_class]
        counts.append(len(positions))
        if len(positions):
            out[label, : len(positions)] = resize(images.gather(positions), size)  # only these rows are read
    return out, counts


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 N×3×H×W → N×3×size×size; bilinear with antialiasing (which matters when shrinking), unchanged if the
    images already have that size."""
    import torch
    import torch.nn.functional as F

    if images.shape[-2:] == (size, size):
        return images.clone()
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


def write_examples(store: TrainImages, out: Path, per_class: int = 4, size: int = 32) -> Path:
    """Write `out`/examples.safetensors from the store's real and synthetic training images; returns its path.

    Deterministic (the first images of each class, no sampling) and atomic. Raises ValueError when the two sides
    have different class lists or the arguments are not positive."""
    if per_class < 1 or size < 1:
        raise ValueError(f"write_examples needs per_class >= 1 and size >= 1, got per_class={per_class}, size={size}")
    sides = {side: store.train(side) for side in SIDES}
    classes = sides["real"].classes
    if sides["synthetic"].classes != classes:
        raise ValueError("real and synthetic training images have different class lists")
    tensors, counts = {}, {}
    for side, images in sides.items():
        tensors[side], counts[side] = class_examples(images, per_class, size)
    metadata = {
        "classes": json.dumps(list(classes)),
        "per_class": str(per_class),
        "size": str(size),
        "counts": json.dumps(counts),
    }
    path = Path(out) / EXAMPLES_FILE
    save_safetensors(tensors, path, metadata=metadata)
    return path


def read_examples(path: Path) -> Examples:
    """The examples written by `write_examples`; ValueError when the file does not hold what it writes."""
    with safe_open(str(path), framework="np") as f:
        metadata = f.metadata() or {}
    arrays = load_file(str(path))
    classes = tuple(json.loads(metadata.get("classes", "[]")))
    counts = json.loads(metadata.get("counts", "{}"))
    for side in SIDES:
        images = arrays.get(side)
        if images is None or images.dtype != np.uint8 or images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"{Path(path).name}: no uint8 C×k×3×H×W array '{side}'")
        if images.shape[0] != len(classes) or images.shape[:2] != arrays[SIDES[0]].shape[:2]:
            raise ValueError(f"{Path(path).name}: '{side}' has shape {images.shape} for {len(classes)} classes")
        counts.setdefault(side, [images.shape[1]] * len(classes))
    return Examples(classes, {side: arrays[side] for side in SIDES}, {side: counts[side] for side in SIDES})
