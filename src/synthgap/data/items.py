"""Where the images of an index come from: how each one's bytes are read and how it is identified.

An index holds `ImageItems` of one kind: image files (`FileItems`, here) or rows of an Arrow table (`ArrowItems`,
with the `hf:` source that makes them, in `data/hf.py`). Each kind says, in one place:

- `identities()`: one string per image that changes whenever its bytes may have (a file's path, size, modification
  and change time; a dataset's fingerprint and row), read without reading the image. The decoded cache remembers
  its key (a digest of the images' bytes) under them.
- `sources()`: every image as something PIL opens (a path or a byte buffer), read in one pass. Chunks of items are
  sent to decoding worker processes, so items pickle cheaply (paths; a memory-mapped dataset pickles as its files).
- `name(i)`: how messages, lists of skipped images and manifests name the image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from synthgap.errors import SynthgapError
from synthgap.io import file_version

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
            yield f"{path}\0{file_version(path.stat())}"

    def sources(self) -> Iterator[tuple[str, ImageSource]]:
        for path in self.files:
            yield str(path), path

    @property
    def paths(self) -> tuple[Path, ...]:
        return self.files
