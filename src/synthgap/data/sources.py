"""Data sources: turn a reference like ``cifake:real`` or ``folder:/data/train`` into a LabelledIndex.

Source names are part of the project's contract: ``cifake``, ``folder`` (and, as they are added, ``imagenet100``
and ``generated``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthgap.data.index import LabelledIndex
from synthgap.errors import SynthgapError
from synthgap.registry import Registry

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAKE_FILE = re.compile(r"^(\d+)(?: \((\d+)\))?\.jpg$")
CIFAKE_SIDES = {"real": "REAL", "synthetic": "FAKE"}
DATA_ROOT_ENV = "SYNTHGAP_DATA_ROOT"

SourceOpener = Callable[[str, str, "Path | None"], LabelledIndex]
SOURCES: Registry[SourceOpener] = Registry("data source")


@dataclass(frozen=True)
class DataRef:
    """A parsed data reference: ``<source>:<argument>``, e.g. ``cifake:synthetic`` or ``folder:/data/train``."""

    source: str
    argument: str

    @classmethod
    def parse(cls, text: str) -> DataRef:
        source, sep, argument = text.partition(":")
        if not sep or not argument:
            raise SynthgapError(
                f"bad data reference {text!r}: expected <source>:<argument>, e.g. cifake:real, cifake:synthetic, "
                "folder:/path/to/class_folders"
            )
        SOURCES.get(source)  # fail early on unknown sources
        return cls(source, argument)

    def __str__(self) -> str:
        return f"{self.source}:{self.argument}"


def open_source(ref: str | DataRef, split: str = "train", data_root: Path | str | None = None) -> LabelledIndex:
    """Index the images of a data reference. `split` is "train" or "test" (ignored by sources given a path)."""
    ref = DataRef.parse(ref) if isinstance(ref, str) else ref
    return SOURCES.get(ref.source)(ref.argument, split, Path(data_root) if data_root else None)


def resolve_data_root(data_root: Path | None) -> Path:
    if data_root is None:
        env = os.environ.get(DATA_ROOT_ENV)
        if not env:
            raise SynthgapError(
                f"no data root: pass --data-root DIR or set {DATA_ROOT_ENV}=DIR, where DIR/cifake holds CIFAKE "
                "(see the README's 'Data' section)"
            )
        data_root = Path(env)
    return data_root.expanduser()


def cifake_dir(data_root: Path | None) -> Path:
    root = resolve_data_root(data_root)
    for candidate in (root / "cifake", root):
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            return candidate
    raise SynthgapError(
        f"CIFAKE not found under {root}: download CIFAKE (Bird & Lotfi 2024, 'CIFAKE: Real and AI-Generated "
        "Synthetic Images' on Kaggle), unpack it so that <root>/cifake/{train,test}/{REAL,FAKE}/*.jpg exist, then "
        f"pass --data-root <root> or set {DATA_ROOT_ENV}=<root>"
    )


def cifake_label(file_name: str) -> tuple[int, int] | None:
    """(class label, image number) from a CIFAKE file name: ``12.jpg`` is class 0, ``12 (k).jpg`` is class k-1."""
    match = CIFAKE_FILE.match(file_name)
    if match is None:
        return None
    suffix = match.group(2)
    label = 0 if suffix is None else int(suffix) - 1
    if not 0 <= label < len(CIFAR10_CLASSES):
        return None
    return label, int(match.group(1))


@SOURCES.register("cifake")
def open_cifake(side: str, split: str, data_root: Path | None) -> LabelledIndex:
    if side not in CIFAKE_SIDES:
        raise SynthgapError(f"unknown CIFAKE side {side!r}; choose from: {', '.join(CIFAKE_SIDES)}")
    if split not in ("train", "test"):
        raise SynthgapError(f"unknown CIFAKE split {split!r}; choose train or test")
    folder = cifake_dir(data_root) / split / CIFAKE_SIDES[side]
    if not folder.is_dir():
        raise SynthgapError(f"CIFAKE folder missing: {folder}")
    entries = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        parsed = cifake_label(entry.name)
        if parsed is None:
            raise SynthgapError(f"unexpected file in CIFAKE folder (expected '<n>.jpg' or '<n> (k).jpg'): {entry.path}")
        entries.append((parsed[0], parsed[1], Path(entry.path)))
    entries.sort(key=lambda e: (e[0], e[1]))
    index = LabelledIndex(
        name=f"cifake:{side}/{split}",
        root=folder,
        layout="cifake",
        classes=CIFAR10_CLASSES,
        paths=tuple(e[2] for e in entries),
        labels=np.array([e[0] for e in entries], dtype=np.int64),
    )
    _check_no_empty_class(index)
    return index


@SOURCES.register("folder")
def open_folder(path: str, split: str, data_root: Path | None) -> LabelledIndex:
    """ImageFolder layout: ``<path>/<class>/**/*.<image extension>``; classes sorted by name."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SynthgapError(f"image folder not found: {root}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise SynthgapError(f"no class folders in {root} (expected <root>/<class>/<image files>)")
    paths: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        paths += files
        labels += [label] * len(files)
    index = LabelledIndex(
        name=f"folder:{root}",
        root=root,
        layout="folder",
        classes=tuple(d.name for d in class_dirs),
        paths=tuple(paths),
        labels=np.array(labels, dtype=np.int64),
    )
    _check_no_empty_class(index)
    return index


def _check_no_empty_class(index: LabelledIndex) -> None:
    empty = [name for name, count in index.counts().items() if count == 0]
    if empty:
        raise SynthgapError(f"{index.name}: no images for class(es) {', '.join(empty)} in {index.root}")


def detect_layout(path: Path) -> str:
    """Name the layout of a folder: "cifake" (CIFAKE root or one of its side folders) or "folder"."""
    path = Path(path)
    if (path / "train" / "REAL").is_dir() or (path / "cifake").is_dir():
        return "cifake"
    if path.is_dir() and any(cifake_label(p.name) is not None for p in _first_files(path, 5)):
        return "cifake-side"
    return "folder"


def _first_files(path: Path, n: int) -> list[Path]:
    out = []
    for entry in os.scandir(path):
        if entry.is_file():
            out.append(Path(entry.path))
            if len(out) == n:
                break
    return out
