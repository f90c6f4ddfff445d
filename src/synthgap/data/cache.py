"""Decode an index once into a uint8 tensor (N×3×H×W) and keep it on disk.

The cache key covers the file list with sizes and modification times, the resolution and the decoder version, so
editing, adding or removing a file rebuilds the cache, and a second run never decodes a JPEG again.

Each cache file `<key>.safetensors` has a checksum file `<key>.checksum.json` (SHA-256 and size), written after it:
the data file only counts as complete when its checksum file exists and matches. A file that fails the check or
cannot be parsed is reported in one warning line and decoded again. A cache file without a checksum file (written
by an older synthgap, or by a process killed between the two writes) is stale and rebuilt the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError

from synthgap.data.index import LabelledIndex
from synthgap.errors import BadImageError, SynthgapError, warn
from synthgap.io import atomic_write_json, save_safetensors, verify_file
from synthgap.progress import progress_bar

CACHE_ENV = "SYNTHGAP_CACHE_DIR"
DECODER_VERSION = 1  # bump when decode_image changes its output
CHUNK = 512  # images per worker task: big enough to amortise process overhead, small enough for a smooth bar


@dataclass(eq=False)
class ImageTensors:
    """Decoded images of one index: `images` uint8 N×3×H×W, `labels` int64 N."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    skipped: list[str] = field(default_factory=list)  # files left out with --skip-bad
    key: str = ""  # identifies the decoded images (cache key); empty for tensors made in memory

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, positions: np.ndarray | torch.Tensor) -> ImageTensors:
        """The images at `positions`; the key (if any) extends to name exactly this selection."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        key = ""
        if self.key:
            key = f"{self.key}:{hashlib.sha256(positions.numpy().tobytes()).hexdigest()[:16]}"
        # the whole set in order (e.g. `max` per class above every class's size): no copy of memory-mapped images
        whole = len(positions) == len(self) and bool((positions == torch.arange(len(self))).all())
        images = self.images if whole else self.images[positions]
        return ImageTensors(images, self.labels[positions], self.classes, list(self.skipped), key)


def concat_images(parts: list[ImageTensors]) -> ImageTensors:
    """One set from several with the same classes (e.g. real and synthetic images mixed); keyed by its parts."""
    if not parts:
        raise ValueError("nothing to concatenate")
    for part in parts[1:]:
        if part.classes != parts[0].classes:
            raise SynthgapError("cannot mix image sets whose class lists differ")
    key = ""
    if all(part.key for part in parts):
        key = "mix-" + hashlib.sha256("\n".join(part.key for part in parts).encode()).hexdigest()[:24]
    return ImageTensors(
        torch.cat([p.images for p in parts]),
        torch.cat([p.labels for p in parts]),
        parts[0].classes,
        [s for p in parts for s in p.skipped],
        key,
    )


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "synthgap")


def decode_image(path: Path, resolution: int) -> np.ndarray:
    """One image as uint8 3×R×R: converted to RGB, shorter side resized to R, centre-cropped."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (resolution, resolution))  # JPEG: decode at reduced scale when much larger than R
            im = im.convert("RGB")
            if im.size != (resolution, resolution):
                im = _resize_center_crop(im, resolution)
            array = np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImageError(path, str(exc) or type(exc).__name__) from None
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _resize_center_crop(im: Image.Image, resolution: int) -> Image.Image:
    width, height = im.size
    scale = resolution / min(width, height)
    new_w, new_h = max(resolution, round(width * scale)), max(resolution, round(height * scale))
    im = im.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (new_w - resolution) // 2, (new_h - resolution) // 2
    return im.crop((left, top, left + resolution, top + resolution))


def _decode_chunk(paths: list[Path], resolution: int, skip_bad: bool) -> tuple[np.ndarray, list[int]]:
    """Decode a chunk; returns the stacked images and the positions (within the chunk) that failed."""
    images, bad = [], []
    for i, path in enumerate(paths):
        try:
            images.append(decode_image(path, resolution))
        except BadImageError:
            if not skip_bad:
                raise
            bad.append(i)
    stacked = np.stack(images) if images else np.zeros((0, 3, resolution, resolution), np.uint8)
    return stacked, bad


def cache_key(index: LabelledIndex, resolution: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": DECODER_VERSION, "res": resolution, "classes": index.classes}).encode())
    for path, label in zip(index.paths, index.labels.tolist(), strict=True):
        st = path.stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n".encode())
    return h.hexdigest()[:32]


def load_images(
    index: LabelledIndex,
    resolution: int,
    *,
    cache_dir: Path | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ImageTensors:
    """Decoded images of `index`, from the disk cache when it is current, else decoded (in parallel) and cached."""
    if resolution < 8:
        raise SynthgapError(f"image resolution must be at least 8 pixels, got {resolution}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = f"{cache_key(index, resolution)}-{'skip' if skip_bad else 'strict'}"
    path = cache_dir / f"{key}.safetensors"
    tensors = _read_cache(path, index.classes) if path.exists() else None
    if tensors is None:
        tensors = _decode_all(index, resolution, skip_bad=skip_bad, workers=workers, progress=progress)
        _write_cache(path, tensors, index)
    tensors.key = key
    return tensors


def _decode_all(index: LabelledIndex, resolution: int, *, skip_bad: bool, workers: int | None, progress: bool):
    chunks = [list(index.paths[i : i + CHUNK]) for i in range(0, len(index), CHUNK)]
    workers = workers or min(os.cpu_count() or 1, 8)
    bar = progress_bar(len(index), desc=f"decode {index.name}", unit="img", enabled=progress, leave=False)
    results = []
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            results.append(_decode_chunk(chunk, resolution, skip_bad))
            bar.update(len(chunk))
    else:
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(_decode_chunk, chunk, resolution, skip_bad) for chunk in chunks]
            for chunk, future in zip(chunks, futures, strict=True):
                results.append(future.result())
                bar.update(len(chunk))
    bar.close()
    keep = np.ones(len(index), dtype=bool)
    for chunk_no, (_, bad) in enumerate(results):
        keep[[chunk_no * CHUNK + i for i in bad]] = False
    skipped = [str(index.paths[i]) for i in np.flatnonzero(~keep)]
    if not keep.any():
        raise SynthgapError(f"{index.name}: none of the {len(index)} images could be decoded")
    images = torch.from_numpy(np.concatenate([r[0] for r in results]))
    labels = torch.from_numpy(index.labels[keep].copy())
    return ImageTensors(images, labels, index.classes, skipped)


def checksum_path(path: Path) -> Path:
    """The checksum file that commits the cache file `path`: `<key>.checksum.json` beside `<key>.safetensors`."""
    return path.with_suffix(".checksum.json")


def _write_cache(path: Path, tensors: ImageTensors, index: LabelledIndex) -> None:
    """Write the data file, then its checksum file: a reader trusts the data only once the second write is done."""
    checksum_path(path).unlink(missing_ok=True)  # un-commit an older file before replacing it
    metadata = {"classes": json.dumps(list(index.classes)), "skipped": json.dumps(tensors.skipped), "name": index.name}
    record = save_safetensors({"images": tensors.images, "labels": tensors.labels}, path, metadata=metadata)
    atomic_write_json(checksum_path(path), {"file": path.name, **record})


def _read_cache(path: Path, classes: tuple[str, ...]) -> ImageTensors | None:
    """The cached tensors when the file matches its checksum and parses; else one warning and None (rebuild)."""
    problem = _cache_problem(path)
    tensors = None
    if problem is None:
        try:
            tensors = _parse_cache(path, classes)
        except (SafetensorError, ValueError, KeyError, TypeError) as exc:
            problem = f"is corrupt (cannot be parsed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if problem is not None:
        warn(f"cache file {path} {problem}; rebuilding")
    return tensors


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
    return np.memmap(path, dtype=np_dtype, mode="c", offset=data_start + start, shape=shape)


def _cache_problem(path: Path) -> str | None:
    """What is wrong with the cache file `path` against its checksum file, as a clause ("is corrupt (...)")."""
    try:
        record = json.loads(checksum_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "has no checksum file (written by an older synthgap, or its write was interrupted)"
    except (OSError, ValueError) as exc:
        return f"is corrupt (its checksum file cannot be read: {type(exc).__name__})"
    reason = verify_file(path, record)
    return None if reason is None else f"is corrupt ({reason})"


def _parse_cache(path: Path, classes: tuple[str, ...]) -> ImageTensors:
    """Open a verified cache file, checking that it holds what this module writes (raises ValueError if not).

    The images are memory-mapped, not read: a batch or a subset reads only its own images, and processes on one
    node share the page cache instead of each holding a copy (copy-on-write, so nothing can change the file)."""
    header, data_start = _safetensors_header(path)
    metadata = header.get("__metadata__") or {}
    images = torch.from_numpy(_mapped(path, header, "images", "U8", np.uint8, data_start))
    labels = torch.from_numpy(np.array(_mapped(path, header, "labels", "I64", np.int64, data_start)))
    if images.ndim != 4 or images.shape[1] != 3 or labels.shape != (len(images),):
        raise ValueError(f"unexpected tensors: images {tuple(images.shape)}, labels {tuple(labels.shape)}")
    if tuple(json.loads(metadata.get("classes", "null")) or ()) != classes:
        raise ValueError("its class list differs from the index")
    skipped = json.loads(metadata.get("skipped", "[]"))
    if not isinstance(skipped, list):
        raise ValueError("malformed list of skipped files")
    return ImageTensors(images, labels, classes, skipped)
