"""Decode an index once into a uint8 tensor (N×3×H×W) and keep it on disk.

The cache key covers the file list with sizes and modification times, the resolution and the decoder version, so
editing, adding or removing a file rebuilds the cache, and a second run never decodes a JPEG again.

Each cache file `<key>.safetensors` has a checksum file `<key>.checksum.json` (SHA-256 and size), written after it:
the data file only counts as complete when its checksum file exists and matches. A file that fails the check or
cannot be parsed is reported in one warning line and decoded again. A cache file without a checksum file (written
by an older synthgap, or by a process killed between the two writes) is stale and rebuilt the same way.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError

from synthgap.data.index import LabelledIndex
from synthgap.errors import BadImageError, SynthgapError, warn
from synthgap.io import CHECKSUM, atomic_path, atomic_write_json, file_digest, verify_file
from synthgap.progress import progress_bar

CACHE_ENV = "SYNTHGAP_CACHE_DIR"
DECODER_VERSION = 1  # bump when decode_image changes its output
CHUNK = 512  # images per worker task: big enough to amortise process overhead, small enough for a smooth bar
# Rows at least this large are read with pread. Smaller ones (CIFAKE's 3 KB) are gathered through the mapping: a
# syscall per row would cost several times the copy (56k vs 150k+ img/s measured at 32 px), and a cache of such rows
# is small, so the pages a process touches stay few.
PREAD_MIN_ROW = 16 << 10
HEADER_SLACK = 4096  # bytes of header space kept for the list of skipped files
READ_LIMIT = 1 << 30  # bytes asked of one pread: Linux returns at most 0x7ffff000 per call


@dataclass(frozen=True)
class RowFile:
    """Where the rows of a cache file's image tensor lie, so batches can be read with `pread`.

    Pages touched through a memory mapping count towards the process's resident memory until the kernel needs
    them back, so a training loop that indexes a 20 GB mapping grows to many GB; rows read with `pread` go through
    the page cache (shared by every process on the node) and only the batch itself is resident.
    """

    path: Path
    offset: int  # byte offset of row 0
    row_shape: tuple[int, ...]  # 3×H×W

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape))

    def read(self, rows: torch.Tensor, *, pin: bool = False) -> torch.Tensor:
        """The rows at `rows` (in that order) as a new uint8 tensor (in pinned memory with `pin`, ready for a
        non-blocking copy to a GPU); consecutive rows are read in one call."""
        rows_list = rows.tolist()
        out = torch.empty((len(rows_list), *self.row_shape), dtype=torch.uint8, pin_memory=pin)
        flat = out.view(len(rows_list), self.row_bytes).numpy()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            start = 0
            while start < len(rows_list):
                stop = start + 1
                while stop < len(rows_list) and rows_list[stop] == rows_list[stop - 1] + 1:
                    stop += 1
                self._read_into(
                    fd, memoryview(flat[start:stop]).cast("B"), self.offset + rows_list[start] * self.row_bytes
                )
                start = stop
        finally:
            os.close(fd)
        return out

    def _read_into(self, fd: int, buffer: memoryview, position: int) -> None:
        """Fill `buffer` from `position`; one call returns at most ~2 GiB on Linux, so long runs take several."""
        done = 0
        while done < len(buffer):
            got = os.preadv(fd, [buffer[done : done + READ_LIMIT]], position + done)
            if got <= 0:
                raise OSError(errno.EIO, f"short read ({done} of {len(buffer)} bytes)", str(self.path))
            done += got


class ImageTensors:
    """Decoded images of one index, uint8 N×3×H×W, with int64 labels.

    A set may be a selection of rows of a larger stored tensor (a per-class subset of a memory-mapped cache):
    `gather` reads only the rows a batch needs, and nothing is copied until then. `images` materialises the whole
    set (a copy for a selection); loaders use `gather`.

    `resolution` is the size images are seen at: the stored size, or smaller when a storage resolution above the
    training resolution was asked for (training crops are taken from the stored image, test images centre-cropped).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: tuple[str, ...],
        skipped: list[str] | None = None,
        key: str = "",  # identifies the images (cache key); empty for tensors made in memory
        *,
        rows: torch.Tensor | None = None,  # positions in `images` this set consists of (None: all, in order)
        row_file: RowFile | None = None,  # where `images` lies on disk, for pread batches
        resolution: int | None = None,
    ) -> None:
        if rows is not None and len(rows) != len(labels):
            raise ValueError(f"{len(rows)} rows for {len(labels)} labels")
        if rows is None and len(images) != len(labels):
            raise ValueError(f"{len(images)} images for {len(labels)} labels")
        self._stored = images
        self._rows = rows
        self._row_file = row_file
        self.labels = labels
        self.classes = tuple(classes)
        self.skipped = list(skipped or [])  # files left out with --skip-bad
        self.key = key
        stored = int(min(images.shape[-2:])) if images.ndim == 4 else 0
        self.resolution = resolution or stored
        if stored and not 0 < self.resolution <= min(images.shape[-2:]):
            raise ValueError(f"images stored at {tuple(images.shape[-2:])} cannot be seen at {self.resolution} px")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def stored_size(self) -> tuple[int, int]:
        """(H, W) of the stored images."""
        return int(self._stored.shape[-2]), int(self._stored.shape[-1])

    @property
    def view_size(self) -> int | None:
        """The size images are seen at when it is smaller than the stored size (loaders crop to it); else None."""
        return self.resolution if self.resolution != min(self.stored_size) else None

    @property
    def nbytes(self) -> int:
        """Bytes of this set's images (not of the stored tensor it may select from)."""
        return len(self) * int(np.prod(self._stored.shape[1:]))

    @property
    def images(self) -> torch.Tensor:
        """All images of the set as one tensor (the stored one when the set is all of it; else a copy)."""
        return self._stored if self._rows is None else self.gather(torch.arange(len(self)))

    def gather(self, take: torch.Tensor | slice, *, pin: bool = False) -> torch.Tensor:
        """The images at positions `take` of this set, read on their own (with pread when the set lies on disk);
        with `pin`, into pinned memory for a non-blocking copy to a GPU."""
        take = self._positions(take)
        rows = take if self._rows is None else self._rows[take]
        if self._row_file is not None and self._row_file.row_bytes >= PREAD_MIN_ROW:
            return self._row_file.read(rows, pin=pin)
        images = self._stored[rows]
        return images.pin_memory() if pin else images

    def _positions(self, take: torch.Tensor | slice) -> torch.Tensor:
        """`take` as non-negative int64 positions (a slice, a boolean mask, negative indices), checked in range: the
        pread path needs plain row numbers."""
        if isinstance(take, slice):
            return torch.arange(*take.indices(len(self)), dtype=torch.long)
        take = torch.as_tensor(take)
        if take.dtype == torch.bool:
            if take.shape != (len(self),):
                raise IndexError(f"a boolean mask of shape {tuple(take.shape)} for {len(self)} images")
            return take.nonzero().flatten()
        take = take.long()
        if len(take) and (take.min() < -len(self) or take.max() >= len(self)):
            raise IndexError(f"positions out of range for {len(self)} images")
        return torch.where(take < 0, take + len(self), take)

    def with_resolution(self, resolution: int, key: str) -> ImageTensors:
        """The same images seen at `resolution` (≤ the stored size), under `key`."""
        return ImageTensors(self._stored, self.labels, self.classes, self.skipped, key,
                            rows=self._rows, row_file=self._row_file, resolution=resolution)  # fmt: skip

    def select(self, positions: np.ndarray | torch.Tensor) -> ImageTensors:
        """The images at `positions` (no copy); the key (if any) extends to name exactly this selection."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        key = ""
        if self.key:
            key = f"{self.key}:{hashlib.sha256(positions.numpy().tobytes()).hexdigest()[:16]}"
        # the whole set in order (e.g. `max` per class above every class's size) stays the set itself
        whole = len(positions) == len(self) and bool((positions == torch.arange(len(self))).all())
        rows = self._rows if whole else (positions if self._rows is None else self._rows[positions])
        return ImageTensors(self._stored, self.labels[positions], self.classes, self.skipped, key,
                            rows=rows, row_file=self._row_file, resolution=self.resolution)  # fmt: skip


def concat_images(parts: list[ImageTensors]) -> ImageTensors:
    """One set from several with the same classes (e.g. real and synthetic images mixed); keyed by its parts.
    Nothing is copied: a batch reads its images from the parts they belong to."""
    if not parts:
        raise ValueError("nothing to concatenate")
    for part in parts[1:]:
        if part.classes != parts[0].classes:
            raise SynthgapError("cannot mix image sets whose class lists differ")
        if (part.stored_size, part.resolution) != (parts[0].stored_size, parts[0].resolution):
            raise SynthgapError("cannot mix image sets stored or seen at different resolutions")
    key = ""
    if all(part.key for part in parts):
        key = "mix-" + hashlib.sha256("\n".join(part.key for part in parts).encode()).hexdigest()[:24]
    return ConcatenatedImages(parts, key)


class ConcatenatedImages(ImageTensors):
    """Several image sets end to end, read part by part (a mixed real + synthetic training set at paper scale is
    tens of GB: it must not be copied into memory)."""

    def __init__(self, parts: list[ImageTensors], key: str) -> None:
        first = parts[0]
        labels = torch.cat([p.labels for p in parts])
        super().__init__(first._stored, labels, first.classes, [s for p in parts for s in p.skipped], key,
                         rows=torch.zeros(len(labels), dtype=torch.long), resolution=first.resolution)  # fmt: skip
        self._parts = parts
        self._ends = torch.tensor([len(p) for p in parts]).cumsum(0)

    @property
    def images(self) -> torch.Tensor:
        return torch.cat([p.images for p in self._parts])

    def gather(self, take: torch.Tensor | slice, *, pin: bool = False) -> torch.Tensor:
        take = self._positions(take)
        h, w = self.stored_size
        out = torch.empty((len(take), 3, h, w), dtype=torch.uint8, pin_memory=pin)
        part_of = torch.bucketize(take, self._ends, right=True)
        for i, part in enumerate(self._parts):
            mine = (part_of == i).nonzero().flatten()
            if len(mine):
                start = int(self._ends[i]) - len(part)
                out[mine] = part.gather(take[mine] - start)
        return out

    def select(self, positions: np.ndarray | torch.Tensor) -> ImageTensors:
        selected = torch.as_tensor(positions, dtype=torch.long)
        key = f"{self.key}:{hashlib.sha256(selected.numpy().tobytes()).hexdigest()[:16]}" if self.key else ""
        return ImageTensors(self.gather(selected), self.labels[selected], self.classes, self.skipped, key,
                            resolution=self.resolution)  # fmt: skip

    def with_resolution(self, resolution: int, key: str) -> ImageTensors:
        raise NotImplementedError("set the resolution of the parts before concatenating them")


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "synthgap")


def decode_image(path: Path, resolution: int) -> np.ndarray:
    """One image as uint8 3×R×R: converted to RGB, shorter side resized to R, centre-cropped."""
    # PIL's warnings are recorded rather than printed: a decompression-bomb-sized image (above Image.MAX_IMAGE_PIXELS,
    # below twice that, where PIL refuses it) becomes one synthgap warning naming the file; any other is passed on.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(path) as im:
                size = im.size
                im.draft("RGB", (resolution, resolution))  # JPEG: decode at reduced scale when much larger than R
                im = im.convert("RGB")
                if im.size != (resolution, resolution):
                    im = _resize_center_crop(im, resolution)
                array = np.asarray(im, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise BadImageError(path, str(exc) or type(exc).__name__) from None
    for caught_warning in caught:
        if issubclass(caught_warning.category, Image.DecompressionBombWarning):
            pixels = f"{size[0]}×{size[1]} = {size[0] * size[1]:,} pixels"
            warn(f"{path}: a very large image ({pixels}, over PIL's decompression-bomb limit); decoded anyway")
        else:
            warnings.warn_explicit(
                caught_warning.message, caught_warning.category, caught_warning.filename, caught_warning.lineno
            )
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
        tensors = _decode_to_cache(path, index, resolution, skip_bad=skip_bad, workers=workers, progress=progress)
    tensors.key = key
    return tensors


def checksum_path(path: Path) -> Path:
    """The checksum file that commits the cache file `path`: `<key>.checksum.json` beside `<key>.safetensors`."""
    return path.with_suffix(".checksum.json")


def _decode_to_cache(
    path: Path, index: LabelledIndex, resolution: int, *, skip_bad: bool, workers: int | None, progress: bool
) -> ImageTensors:
    """Decode `index` straight into the cache file `path` (in parallel, chunk by chunk) and open it mapped.

    Chunks are written as they arrive, so memory holds a few chunks, never the whole set (ImageNet-100 at 256 px
    is ~25 GB a side). The data file is committed by its checksum file, written after it.
    """
    checksum_path(path).unlink(missing_ok=True)  # un-commit an older file before replacing it
    chunks = [list(index.paths[i : i + CHUNK]) for i in range(0, len(index), CHUNK)]
    row_bytes = 3 * resolution * resolution
    # Header space for the count of a run without skipped images; a longer header (many skipped files) is
    # handled by rewriting the file once at the end.
    reserve = len(_cache_header(index, len(index), row_bytes, resolution, [])) + HEADER_SLACK
    reserve += -reserve % 8
    keep = np.ones(len(index), dtype=bool)
    bar = progress_bar(len(index), desc=f"decode {index.name}", unit="img", enabled=progress, leave=False)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.seek(reserve)
            for chunk_no, (images, bad) in enumerate(_decoded_chunks(chunks, resolution, skip_bad, workers)):
                _write_rows(f, images)
                keep[[chunk_no * CHUNK + i for i in bad]] = False
                bar.update(len(chunks[chunk_no]))
            if not keep.any():
                raise SynthgapError(f"{index.name}: none of the {len(index)} images could be decoded")
            count = int(keep.sum())
            skipped = [str(index.paths[i]) for i in np.flatnonzero(~keep)]
            f.write(np.ascontiguousarray(index.labels[keep], dtype="<i8").tobytes())
            header = _cache_header(index, count, row_bytes, resolution, skipped)
            fits = len(header) + 8 <= reserve  # the 8-byte length prefix comes first
            if fits:
                f.seek(0)
                f.write(_padded(header, reserve))
        if not fits:
            _move_data(tmp, reserve, header)
        record = {CHECKSUM: file_digest(tmp), "bytes": tmp.stat().st_size}
    bar.close()
    atomic_write_json(checksum_path(path), {"file": path.name, **record})
    return _parse_cache(path, index.classes)


def _write_rows(f: BinaryIO, images: np.ndarray) -> None:
    if images.size:  # a chunk whose images were all skipped writes nothing (and cannot be cast to bytes)
        f.write(memoryview(np.ascontiguousarray(images)).cast("B"))


def _decoded_chunks(
    chunks: list[list[Path]], resolution: int, skip_bad: bool, workers: int | None
) -> Iterator[tuple[np.ndarray, list[int]]]:
    """(images, positions that failed) of each chunk in order, decoded by a pool with a bounded number in flight."""
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield _decode_chunk(chunk, resolution, skip_bad)
        return
    with ProcessPoolExecutor(workers) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(_decode_chunk, chunk, resolution, skip_bad))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _cache_header(index: LabelledIndex, count: int, row_bytes: int, resolution: int, skipped: list[str]) -> bytes:
    """The safetensors header (length prefix not included) of a cache file holding `count` images."""
    images_end = count * row_bytes
    header = {
        "__metadata__": {
            "classes": json.dumps(list(index.classes)),
            "skipped": json.dumps(skipped),
            "name": index.name,
        },  # fmt: skip
        "images": {"dtype": "U8", "shape": [count, 3, resolution, resolution], "data_offsets": [0, images_end]},
        "labels": {"dtype": "I64", "shape": [count], "data_offsets": [images_end, images_end + 8 * count]},
    }
    return json.dumps(header, separators=(",", ":")).encode()


def _padded(header: bytes, size: int) -> bytes:
    """Length prefix and header padded with spaces (valid JSON whitespace) to exactly `size` bytes."""
    body = header + b" " * (size - 8 - len(header))
    return len(body).to_bytes(8, "little") + body


def _move_data(tmp: Path, reserve: int, header: bytes) -> None:
    """Rewrite `tmp` with a header longer than the space reserved for it: the data follows the new header."""
    size = len(header) + 8
    size += -size % 8
    moved = tmp.with_name(tmp.name + ".moved")
    try:
        with open(tmp, "rb") as src, open(moved, "wb") as dst:
            dst.write(_padded(header, size))
            src.seek(reserve)
            shutil.copyfileobj(src, dst, 16 << 20)
        os.replace(moved, tmp)
    finally:
        moved.unlink(missing_ok=True)


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
    # Read-only: a private (copy-on-write) mapping is charged against memory up front, so one larger than RAM
    # (a 25 GB ImageNet-100 side on a 24 GB machine) fails with ENOMEM.
    return np.memmap(path, dtype=np_dtype, mode="r", offset=data_start + start, shape=shape)


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
