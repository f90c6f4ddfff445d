"""Decode an index once into a uint8 tensor (N×3×H×W) and keep it on disk.

The cache key covers the bytes of every image in index order, the labels, the class order, the resolution and the
decoder version, so editing, adding or removing an image rebuilds the cache, and a second run never decodes a JPEG
again. It names no path and no time: a data folder moved, copied to a node's scratch disk or unpacked again keeps its
key, and with it its decoded cache and the runs recorded on it (the key is the `files` setting of every record).
Reading every image to find the key happens once per version of the files: the key is remembered in the cache dir
under a hash of each image's stat identity (`data/items.py`: path, size, modification and change time), which any
change to a file changes.

Each cache file `<key>.safetensors` (`data/tensorfile.py`) has a checksum file `<key>.checksum.json` (SHA-256 and
size), written after it: the data file only counts as complete when its checksum file exists and matches. A file that
fails the check or cannot be parsed is reported in one warning line and decoded again. A cache file without a
checksum file (written by an older synthgap, or by a process killed between the two writes) is stale and rebuilt the
same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import numpy as np
from safetensors import SafetensorError

from synthgap.data.cachedir import CACHE_ENV, default_cache_dir  # noqa: F401 (part of this module's API)
from synthgap.data.decode import CHUNK, DECODER_VERSION, decoded_chunks
from synthgap.data.index import LabelledIndex
from synthgap.data.items import ImageSource
from synthgap.data.tensorfile import HEADER_SLACK, cache_header, move_data, padded, parse_cache, write_rows
from synthgap.data.tensors import ImageTensors
from synthgap.errors import SynthgapError, warn
from synthgap.io import CHECKSUM, HASH_THREADS, atomic_path, atomic_write_json, file_digest, verify_file
from synthgap.progress import progress_bar

KEYS = "keys"  # the cache dir's folder of remembered keys
KEY_PATTERN = re.compile(r"[0-9a-f]{32}")
UNREADABLE = "unreadable"  # an image's digest when its bytes cannot be read


def cache_key(index: LabelledIndex, resolution: int, cache_dir: Path | None = None, *, progress: bool = False) -> str:
    """What identifies `index` decoded at `resolution`: the digest of every image's bytes with its label, in order,
    the class order, the resolution and the decoder version. Found by reading every image the first time a version
    of the files is seen, then remembered in `cache_dir` (see the module's docstring)."""
    head = json.dumps({"v": DECODER_VERSION, "res": resolution, "classes": index.classes}).encode()
    labels = index.labels.tolist()
    seen = hashlib.sha256(head)
    for identity, label in zip(index.items.identities(), labels, strict=True):
        seen.update(f"{identity}\0{label}\n".encode())
    memo = (Path(cache_dir) if cache_dir else default_cache_dir()) / KEYS / f"{seen.hexdigest()[:32]}.json"
    key = _remembered_key(memo, len(index))
    if key is None:
        key, unreadable = _content_key(index, head, labels, progress)
        if not unreadable:  # a read error may pass (a network mount): such a key is found again next time
            with suppress(OSError):  # a read-only cache dir: the key is found again next time, never wrong
                atomic_write_json(memo, {"key": key, "images": len(index)})
    return key


def _names_digest(index: LabelledIndex) -> str:
    h = hashlib.sha256()
    for position in range(len(index)):
        h.update(f"{index.items.name(position)}\n".encode())
    return h.hexdigest()[:12]


def _remembered_key(memo: Path, count: int) -> str | None:
    """The key a memo file holds, when it is one this module wrote for `count` images; else None (found again)."""
    try:
        record = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("images") != count:
        return None
    key = record.get("key")
    return key if isinstance(key, str) and KEY_PATTERN.fullmatch(key) else None


def _content_key(index: LabelledIndex, head: bytes, labels: list[int], progress: bool) -> tuple[str, int]:
    """The digest of every image's bytes and label in order (read by a few threads: hashing and reads release the
    GIL), and how many images could not be read (they count as unreadable, as decoding with `skip_bad` treats
    them)."""
    h = hashlib.sha256(head)
    unreadable = 0
    bar = progress_bar(len(index), desc=f"identify {index.name}", unit="img", enabled=progress, leave=False)
    with bar, ThreadPoolExecutor(HASH_THREADS) as pool:
        for start, chunk in zip(range(0, len(index), CHUNK), index.items.chunks(CHUNK), strict=True):
            # a chunk's sources at a time: a dataset's bytes are never all in memory
            digests = pool.map(_source_digest, list(chunk.sources()))
            for digest, label in zip(digests, labels[start : start + len(chunk)], strict=True):
                unreadable += digest == UNREADABLE
                h.update(f"{digest}\0{label}\n".encode())
            bar.update(len(chunk))
    return h.hexdigest()[:32], unreadable


def _source_digest(item: tuple[str, ImageSource]) -> str:
    _, source = item
    try:
        if isinstance(source, Path):
            return file_digest(source)
        return hashlib.sha256(source.read()).hexdigest()
    except OSError:
        return UNREADABLE


def load_images(
    index: LabelledIndex,
    resolution: int,
    *,
    cache_dir: Path | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    progress: bool = True,
    files_key: str | None = None,
) -> ImageTensors:
    """Decoded images of `index`, from the disk cache when it is current, else decoded (in parallel) and cached.
    `files_key`: `cache_key(index, resolution, cache_dir)` when the caller has just found it (its files are then read
    once)."""
    if resolution < 8:
        raise SynthgapError(f"image resolution must be at least 8 pixels, got {resolution}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    files_key = files_key or cache_key(index, resolution, cache_dir, progress=progress)
    # With skip_bad the file names the images it skipped, by their names here: a copy elsewhere decodes its own.
    key = f"{files_key}-skip-{_names_digest(index)}" if skip_bad else f"{files_key}-strict"
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
    chunks = index.items.chunks(CHUNK)
    row_bytes = 3 * resolution * resolution
    # Header space for the count of a run without skipped images; a longer header (many skipped files) is
    # handled by rewriting the file once at the end.
    reserve = len(cache_header(index.name, index.classes, len(index), row_bytes, resolution, [])) + HEADER_SLACK
    reserve += -reserve % 8
    keep = np.ones(len(index), dtype=bool)
    bar = progress_bar(len(index), desc=f"decode {index.name}", unit="img", enabled=progress, leave=False)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.seek(reserve)
            for chunk_no, (images, bad) in enumerate(decoded_chunks(chunks, resolution, skip_bad, workers)):
                write_rows(f, images)
                keep[[chunk_no * CHUNK + i for i in bad]] = False
                bar.update(len(chunks[chunk_no]))
            if not keep.any():
                raise SynthgapError(f"{index.name}: none of the {len(index)} images could be decoded")
            count = int(keep.sum())
            skipped = [index.items.name(i) for i in np.flatnonzero(~keep)]
            f.write(np.ascontiguousarray(index.labels[keep], dtype="<i8").tobytes())
            header = cache_header(index.name, index.classes, count, row_bytes, resolution, skipped)
            fits = len(header) + 8 <= reserve  # the 8-byte length prefix comes first
            if fits:
                f.seek(0)
                f.write(padded(header, reserve))
        if not fits:
            move_data(tmp, reserve, header)
        record = {CHECKSUM: file_digest(tmp), "bytes": tmp.stat().st_size}
    bar.close()
    atomic_write_json(checksum_path(path), {"file": path.name, **record})
    return parse_cache(path, index.classes)


def _read_cache(path: Path, classes: tuple[str, ...]) -> ImageTensors | None:
    """The cached tensors when the file matches its checksum and parses; else one warning and None (rebuild)."""
    problem = _cache_problem(path)
    tensors = None
    if problem is None:
        try:
            tensors = parse_cache(path, classes)
        except (SafetensorError, ValueError, KeyError, TypeError) as exc:
            problem = f"is corrupt (cannot be parsed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if problem is not None:
        warn(f"cache file {path} {problem}; rebuilding")
    return tensors


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
