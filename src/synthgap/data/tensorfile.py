"""The file a decoded set is kept in: safetensors (`images` U8 N×3×H×W, `labels` I64 N, class list and skipped
images in the metadata), written row by row as decoding goes and opened memory-mapped.

The writer is hand-written because the safetensors library writes a file from tensors already in memory, and a
decoded side at 256 px (ImageNet-100: ~25 GB) does not fit; the files it writes are plain safetensors files.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from synthgap.data.rowfile import RowFile
from synthgap.data.tensors import ConcatenatedImages, ImageTensors

HEADER_SLACK = 4096  # bytes of header space kept for the list of skipped images


def write_rows(f: BinaryIO, images: np.ndarray) -> None:
    if images.size:  # a chunk whose images were all skipped writes nothing (and cannot be cast to bytes)
        f.write(memoryview(np.ascontiguousarray(images)).cast("B"))


def cache_header(
    name: str, classes: tuple[str, ...], count: int, row_bytes: int, resolution: int, skipped: list[str]
) -> bytes:
    """The safetensors header (length prefix not included) of a cache file holding `count` images."""
    images_end = count * row_bytes
    header = {
        "__metadata__": {
            "classes": json.dumps(list(classes)),
            "skipped": json.dumps(skipped),
            "name": name,
        },
        "images": {"dtype": "U8", "shape": [count, 3, resolution, resolution], "data_offsets": [0, images_end]},
        "labels": {"dtype": "I64", "shape": [count], "data_offsets": [images_end, images_end + 8 * count]},
    }
    return json.dumps(header, separators=(",", ":")).encode()


def padded(header: bytes, size: int) -> bytes:
    """Length prefix and header padded with spaces (valid JSON whitespace) to exactly `size` bytes."""
    body = header + b" " * (size - 8 - len(header))
    return len(body).to_bytes(8, "little") + body


def move_data(tmp: Path, reserve: int, header: bytes) -> None:
    """Rewrite `tmp` with a header longer than the space reserved for it: the data follows the new header."""
    size = len(header) + 8
    size += -size % 8
    moved = tmp.with_name(tmp.name + ".moved")
    try:
        with open(tmp, "rb") as src, open(moved, "wb") as dst:
            dst.write(padded(header, size))
            src.seek(reserve)
            shutil.copyfileobj(src, dst, 16 << 20)
        os.replace(moved, tmp)
    finally:
        moved.unlink(missing_ok=True)


def _safetensors_header(path: Path) -> tuple[dict, int]:
    """The JSON header of a safetensors file and the byte offset where its tensor data starts."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if not 0 < size <= min(path.stat().st_size - 8, 100 << 20):
            raise ValueError("malformed header size")
        header = json.loads(f.read(size))
    if not isinstance(header, dict):
        raise ValueError("malformed header")
    return header, 8 + size


def _mapped(path: Path, header: dict, name: str, dtype: str, np_dtype: type, data_start: int) -> np.ndarray:
    entry = header.get(name)
    if not isinstance(entry, dict) or entry.get("dtype") != dtype:
        raise ValueError(f"no {dtype} tensor {name!r}")
    start, end = entry["data_offsets"]
    shape = tuple(entry["shape"])
    if end - start != int(np.prod(shape)) * np.dtype(np_dtype).itemsize or not all(shape):
        raise ValueError(f"tensor {name!r} has inconsistent offsets")
    # Read-only: a private (copy-on-write) mapping is charged against memory up front, so one larger than RAM
    # (a 25 GB ImageNet-100 side on a 24 GB machine) fails with ENOMEM.
    return np.memmap(path, dtype=np_dtype, mode="r", offset=data_start + start, shape=shape)


def parse_cache(path: Path, classes: tuple[str, ...]) -> ImageTensors:
    """Open a verified cache file, checking that it holds what this module writes (raises ValueError if not).

    The images are memory-mapped read-only, not read: a batch or a subset reads only its own images, and processes
    on one node share the page cache instead of each holding a copy. Nothing writes into cached images (every
    augmentation makes new tensors); a write would fault rather than change the file."""
    header, data_start = _safetensors_header(path)
    metadata = header.get("__metadata__") or {}
    with warnings.catch_warnings():  # torch warns that the read-only mapping is not writable: that is the point
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        images = torch.from_numpy(_mapped(path, header, "images", "U8", np.uint8, data_start))
    labels = torch.from_numpy(np.array(_mapped(path, header, "labels", "I64", np.int64, data_start)))
    if images.ndim != 4 or images.shape[1] != 3 or labels.shape != (len(images),):
        raise ValueError(f"unexpected tensors: images {tuple(images.shape)}, labels {tuple(labels.shape)}")
    if tuple(json.loads(metadata.get("classes", "null")) or ()) != classes:
        raise ValueError("its class list differs from the index")
    skipped = json.loads(metadata.get("skipped", "[]"))
    if not isinstance(skipped, list):
        raise ValueError("malformed list of skipped files")
    row_file = RowFile(path, data_start + header["images"]["data_offsets"][0], tuple(images.shape[1:]))
    return ImageTensors(images, labels, classes, skipped, row_file=row_file)


def open_shared(description: dict) -> ImageTensors:
    """The image set another process described with `ImageTensors.shared`: the same rows of the same cache file, with
    the same labels, classes and resolution (the file is mapped again here, not copied)."""
    if "parts" in description:
        parts = [open_shared(part) for part in description["parts"]]
        order = description["order"]
        return ConcatenatedImages(parts, description["key"], order=None if order is None else torch.tensor(order))
    classes = tuple(description["classes"])
    stored = parse_cache(Path(description["file"]), classes)
    rows = description["rows"]
    return ImageTensors(
        stored.images,
        torch.tensor(description["labels"], dtype=torch.long),
        classes,
        description["skipped"],
        description["key"],
        rows=None if rows is None else torch.tensor(rows, dtype=torch.long),
        row_file=stored.row_file,
        resolution=description["resolution"],
    )
