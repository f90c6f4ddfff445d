"""Where the images of an index come from: how each one's bytes are read and how it is identified.

An index holds `ImageItems` of one kind: image files (`FileItems`) or rows of an Arrow table (`ArrowItems`, a
Hugging Face dataset). Each kind says, in one place:

- `identities()`: one string per image that changes whenever its bytes may have (a file's path, size and
  modification time; a dataset's fingerprint and row). The decoded cache's key is made of them.
- `sources()`: every image as something PIL opens (a path or a byte buffer), read in one pass. Chunks of items are
  sent to decoding worker processes, so items pickle cheaply (paths; a memory-mapped dataset pickles as its files).
- `name(i)`: how messages, lists of skipped images and manifests name the image.
"""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image

from synthgap.errors import SynthgapError

if TYPE_CHECKING:  # datasets is imported only by the sources that read it
    import datasets

ImageSource = Path | BinaryIO  # what `PIL.Image.open` is given


class ImageItems(ABC):
    """The images of an index, in index order."""

    kind: str  # "file", "arrow-row", ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def select(self, positions: Sequence[int] | np.ndarray) -> ImageItems:
        """The items at `positions`, in that order."""

    @abstractmethod
    def name(self, position: int) -> str:
        """How the image at `position` is named to a user."""

    @abstractmethod
    def identities(self) -> Iterator[str]:
        """One string per image, in order, that changes whenever the image's bytes may have changed."""

    @abstractmethod
    def sources(self) -> Iterator[tuple[str, ImageSource]]:
        """(name, what PIL opens) of every image, in order."""

    @property
    def paths(self) -> tuple[Path, ...]:
        """The image files, for commands that need files (img2img sources, links to curated images)."""
        raise SynthgapError(f"these images are {self.kind}s, not files, and this step reads image files")

    def chunks(self, size: int) -> list[ImageItems]:
        """Consecutive runs of at most `size` items (what one decoding task reads)."""
        return [self.select(range(start, min(start + size, len(self)))) for start in range(0, len(self), size)]

    @contextmanager
    def open(self, position: int) -> Iterator[Image.Image]:
        """The image at `position`, opened lazily by PIL (closed on exit)."""
        _, source = next(self.select([position]).sources())
        with Image.open(source) as image:
            yield image


@dataclass(frozen=True, eq=False)
class FileItems(ImageItems):
    """Image files on disk."""

    files: tuple[Path, ...]
    kind = "file"

    def __len__(self) -> int:
        return len(self.files)

    def select(self, positions: Sequence[int] | np.ndarray) -> FileItems:
        return FileItems(tuple(self.files[i] for i in positions))

    def name(self, position: int) -> str:
        return str(self.files[position])

    def identities(self) -> Iterator[str]:
        for path in self.files:
            st = path.stat()
            yield f"{path}\0{st.st_size}\0{st.st_mtime_ns}"

    def sources(self) -> Iterator[tuple[str, ImageSource]]:
        for path in self.files:
            yield str(path), path

    @property
    def paths(self) -> tuple[Path, ...]:
        return self.files


@dataclass(frozen=True, eq=False)
class ArrowItems(ImageItems):
    """Rows of a `datasets.Dataset`'s image column: encoded bytes, or a path to an image file.

    `dataset` holds only the image column and no indices mapping, so a row number is a position in its Arrow table.
    A path stored in a row must lie in `folder` (the dataset's own folder): a dataset cannot make synthgap read a
    file elsewhere. Rows that store bytes are identified by the dataset's fingerprint; rows that store paths also by
    the file's size and modification time.
    """

    dataset: datasets.Dataset
    column: str
    rows: np.ndarray  # int64 row numbers in `dataset`
    title: str  # how the data set is named in messages, e.g. "hf:/data/pets[train]"
    fingerprint: str
    folder: Path | None  # where stored paths may point; None: rows must hold bytes
    numbers: np.ndarray | None = None  # the rows' numbers in the user's dataset, when `dataset` holds only some rows
    kind = "dataset row"

    @property
    def _numbers(self) -> np.ndarray:
        return self.rows if self.numbers is None else self.numbers

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, positions: Sequence[int] | np.ndarray) -> ArrowItems:
        positions = np.asarray(positions, dtype=np.int64)
        numbers = None if self.numbers is None else self.numbers[positions]
        return ArrowItems(self.dataset, self.column, self.rows[positions], self.title, self.fingerprint, self.folder,
                          numbers)  # fmt: skip

    def name(self, position: int) -> str:
        return f"{self.title} row {int(self._numbers[position])}"

    def identities(self) -> Iterator[str]:
        paths = self._stored_paths()  # only the rows that hold a path instead of bytes (never the bytes)
        for row, path in zip(self._numbers.tolist(), paths, strict=True):
            identity = f"{self.fingerprint}\0{row}"
            if path is not None:
                try:
                    st = self._file(row, path).stat()
                except OSError as exc:
                    raise SynthgapError(f"{self.title} row {row}: its image file {path} cannot be read "
                                        f"({exc.strerror or type(exc).__name__})") from None  # fmt: skip
                identity += f"\0{st.st_size}\0{st.st_mtime_ns}"
            yield identity

    def sources(self) -> Iterator[tuple[str, ImageSource]]:
        for row, value in zip(self._numbers.tolist(), self._values(), strict=True):
            name = f"{self.title} row {row}"
            if value.get("bytes") is not None:
                yield name, io.BytesIO(value["bytes"])
            elif value.get("path"):
                yield name, self._file(row, value["path"])
            else:
                yield name, io.BytesIO(b"")  # an empty row: decoding reports it like any unreadable image

    def __reduce__(self) -> tuple:
        """Sent to a decoding worker: a memory-mapped dataset pickles as its files; one held in memory (datasets'
        `HF_DATASETS_IN_MEMORY_MAX_SIZE`) would pickle whole, so only these rows go."""
        import datasets

        fields = (self.column, self.title, self.fingerprint, self.folder)
        if isinstance(self.dataset.data, datasets.table.MemoryMappedTable):
            return _arrow_items, (self.dataset, self.rows, *fields, self.numbers)
        rows = datasets.Dataset(datasets.table.InMemoryTable(self._taken()))
        return _arrow_items, (rows, np.arange(len(self.rows), dtype=np.int64), *fields, self._numbers)

    def _taken(self):  # -> pyarrow.Table
        table = self.dataset.data.table.select([self.column])
        return table.take(self.rows) if len(self.rows) else table.slice(0, 0)

    def _values(self) -> list[dict]:
        """The image column's {bytes, path} structs of these rows, read from Arrow in one call (a chunk's worth)."""
        taken = self._taken().column(self.column)
        return [value if isinstance(value, dict) else {"bytes": value, "path": None} for value in taken.to_pylist()]

    def _stored_paths(self) -> list[str | None]:
        """For each row, the file path it stores instead of bytes, else None; read without touching the bytes."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.dataset.data.table.column(self.column)
        if not pa.types.is_struct(column.type):  # plain binary: every row holds bytes
            return [None] * len(self.rows)
        no_bytes = pc.is_null(pc.struct_field(column, "bytes"))
        if not pc.any(no_bytes).as_py():
            return [None] * len(self.rows)
        paths = pc.if_else(no_bytes, pc.struct_field(column, "path"), None).take(self.rows)
        return paths.to_pylist()

    def _file(self, row: int, stored: str) -> Path:
        """The image file a row names, which must lie inside the dataset's folder (links resolved)."""
        if self.folder is None:
            raise SynthgapError(
                f"{self.title} row {row} names an image file ({stored}) instead of holding its bytes; a dataset "
                "read from the Hub or cache must embed its images"
            )
        path = Path(stored) if os.path.isabs(stored) else self.folder / stored
        inside = self.folder.resolve()
        if not path.resolve().is_relative_to(inside):
            raise SynthgapError(
                f"{self.title} row {row} names an image file outside the dataset's folder {inside}: {stored}"
            )
        return path


def _arrow_items(dataset, rows, column, title, fingerprint, folder, numbers) -> ArrowItems:  # noqa: ANN001
    """ArrowItems rebuilt in a worker (the positional order of `ArrowItems.__reduce__`)."""
    return ArrowItems(dataset, column, rows, title, fingerprint, folder, numbers)
