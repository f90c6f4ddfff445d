"""Decoded image sets: uint8 N×3×H×W tensors with labels, selected and concatenated without copies."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from synthgap.data.rowfile import PREAD_MIN_ROW, RowFile
from synthgap.errors import SynthgapError


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
        stored = int(min(images.shape[-2:])) if images.ndim == 4 else 0
        self._init_set(labels, classes, skipped, key, resolution or stored)
        if stored and not 0 < self.resolution <= min(images.shape[-2:]):
            raise ValueError(f"images stored at {tuple(images.shape[-2:])} cannot be seen at {self.resolution} px")

    def _init_set(
        self, labels: torch.Tensor, classes: tuple[str, ...], skipped: list[str] | None, key: str, resolution: int
    ) -> None:
        """What every image set has, however its images are stored."""
        self.labels = labels
        self.classes = tuple(classes)
        self.skipped = list(skipped or [])  # images left out with --skip-bad, by name (a file path, a dataset row)
        self.key = key
        self.resolution = resolution

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
    def row_file(self) -> RowFile | None:
        """Where the stored tensor lies on disk (None: held in memory only)."""
        return self._row_file

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
        return ImageTensors(
            self._stored,
            self.labels,
            self.classes,
            self.skipped,
            key,
            rows=self._rows,
            row_file=self._row_file,
            resolution=resolution,
        )

    def shared(self) -> dict:
        """Where another process on this machine finds this very set (`tensorfile.open_shared`): the cache file it
        lies in, the rows and labels it consists of, and how it is seen. A set held only in memory has no such place.
        """
        if self._row_file is None:
            raise ValueError("an image set held only in memory cannot be opened by another process")
        return {
            "file": str(self._row_file.path),
            "rows": None if self._rows is None else self._rows.tolist(),
            "labels": self.labels.tolist(),
            "classes": list(self.classes),
            "skipped": self.skipped,
            "key": self.key,
            "resolution": self.resolution,
        }

    def select(self, positions: np.ndarray | torch.Tensor) -> ImageTensors:
        """The images at `positions` (no copy); the key (if any) extends to name exactly this selection."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        key = _selection_key(self.key, positions)
        # the whole set in order (e.g. `max` per class above every class's size) stays the set itself
        whole = len(positions) == len(self) and bool((positions == torch.arange(len(self))).all())
        rows = self._rows if whole else (positions if self._rows is None else self._rows[positions])
        return ImageTensors(
            self._stored,
            self.labels[positions],
            self.classes,
            self.skipped,
            key,
            rows=rows,
            row_file=self._row_file,
            resolution=self.resolution,
        )


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


def _selection_key(key: str, positions: torch.Tensor) -> str:
    """The key of a selection of the set keyed `key`: it names exactly these positions (empty stays empty)."""
    return f"{key}:{hashlib.sha256(positions.numpy().tobytes()).hexdigest()[:16]}" if key else ""


class ConcatenatedImages(ImageTensors):
    """Several image sets end to end, read part by part (a mixed real + synthetic training set at paper scale is
    tens of GB: it must not be copied into memory).

    It keeps the contract of `ImageTensors`: `select` and `gather` copy nothing but the batch they return, and
    `with_resolution` applies to every part. A selection is a list of positions into the parts laid end to end.
    """

    def __init__(self, parts: list[ImageTensors], key: str, *, order: torch.Tensor | None = None) -> None:
        labels = torch.cat([p.labels for p in parts])
        if order is not None:
            labels = labels[order]
        first = parts[0]
        self._init_set(labels, first.classes, [s for p in parts for s in p.skipped], key, first.resolution)
        self._parts = parts
        self._order = order  # positions into the parts end to end that this set consists of (None: all, in order)
        self._ends = torch.tensor([len(p) for p in parts]).cumsum(0)

    @property
    def stored_size(self) -> tuple[int, int]:
        return self._parts[0].stored_size

    @property
    def nbytes(self) -> int:
        h, w = self.stored_size
        return len(self) * 3 * h * w

    @property
    def images(self) -> torch.Tensor:
        return self.gather(torch.arange(len(self)))

    def gather(self, take: torch.Tensor | slice, *, pin: bool = False) -> torch.Tensor:
        take = self._positions(take)
        if self._order is not None:
            take = self._order[take]
        h, w = self.stored_size
        out = torch.empty((len(take), 3, h, w), dtype=torch.uint8, pin_memory=pin)
        part_of = torch.bucketize(take, self._ends, right=True)
        for i, part in enumerate(self._parts):
            mine = (part_of == i).nonzero().flatten()
            if len(mine):
                start = int(self._ends[i]) - len(part)
                out[mine] = part.gather(take[mine] - start)
        return out

    def shared(self) -> dict:
        order = None if self._order is None else self._order.tolist()
        return {"parts": [part.shared() for part in self._parts], "order": order, "key": self.key}

    def select(self, positions: np.ndarray | torch.Tensor) -> ImageTensors:
        positions = torch.as_tensor(positions, dtype=torch.long)
        order = positions if self._order is None else self._order[positions]
        return ConcatenatedImages(self._parts, _selection_key(self.key, positions), order=order)

    def with_resolution(self, resolution: int, key: str) -> ImageTensors:
        parts = [
            part.with_resolution(resolution, f"{part.key}@{resolution}" if part.key else "") for part in self._parts
        ]
        return ConcatenatedImages(parts, key, order=self._order)
