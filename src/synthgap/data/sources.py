"""Data sources: turn a reference like ``cifake:real`` or ``folder:/data/train`` into a LabelledIndex.

Source names are part of the project's contract: ``cifake``, ``folder``, ``imagenet100`` and ``generated``. A
reference may end in options, ``?name=value[&name=value]`` (``folder:/data?class_map=/data/map.csv``).

``folder`` reads what users bring (docs/data.md): class folders with images at any depth, directory and file links
followed (a link loop is skipped with a warning), a split root (``train/`` + ``test/`` or ``val/``) read per split,
and an optional class map (a ``folder,class`` CSV) grouping fine folders into classes. Hidden entries and the
folders ``synthgap generate`` writes beside its class folders (``previews/``, ``manifest.parts/``) are ignored.
"""

from __future__ import annotations

import csv
import inspect
import io
import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from synthgap.data.index import LabelledIndex
from synthgap.errors import SynthgapError
from synthgap.registry import Registry

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAKE_FILE = re.compile(r"^(\d+)(?: \((\d+)\))?\.jpg$")
CIFAKE_SIDES = {"real": "REAL", "synthetic": "FAKE"}
DATA_ROOT_ENV = "SYNTHGAP_DATA_ROOT"
CIFAKE_HOWTO = (
    "download CIFAKE (Bird & Lotfi 2024, 'CIFAKE: Real and AI-Generated Synthetic Images' on Kaggle) and unpack it "
    "so that {root}/cifake/{{train,test}}/{{REAL,FAKE}}/*.jpg exist"
)
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val", "validation")}  # first existing folder wins
SPLIT_NAMES = frozenset(name for names in SPLIT_FOLDERS.values() for name in names)
GENERATOR_FOLDERS = frozenset({"manifest.parts", "previews"})  # what `synthgap generate` writes beside class folders
GENERATOR_MARKERS = ("generate.json", "manifest.jsonl", "manifest.parts")  # any of them: a generate output folder
CLASS_MAP_COLUMNS = ("folder", "class")
# "?name=value[&name=value...]" at the end of a reference; the argument is everything before the first such "?"
OPTIONS_SUFFIX = re.compile(r"^(?P<argument>.*?)\?(?P<options>[A-Za-z_]\w*=[^&]*(?:&[A-Za-z_]\w*=[^&]*)*)$", re.S)
SHOW = 5  # names shown in a message before "..."

# (argument, split, data_root, **options) -> index; options are the opener's keyword-only parameters
SourceOpener = Callable[..., LabelledIndex]
SOURCES: Registry[SourceOpener] = Registry("data source")


@dataclass(frozen=True)
class DataRef:
    """A parsed data reference: ``<source>:<argument>[?<option>=<value>[&...]]``, e.g. ``cifake:synthetic``,
    ``folder:/data/train`` or ``folder:/data/root?class_map=/data/map.csv``.

    Options are the keyword-only parameters of the source's opener (``folder`` takes ``class_map``). A ``?`` starts
    options only when everything after it reads as ``name=value`` pairs, so earlier references stay valid.
    """

    source: str
    argument: str
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> DataRef:
        source, sep, rest = text.partition(":")
        if not sep or not rest:
            raise SynthgapError(
                f"bad data reference {text!r}: expected <source>:<argument>, e.g. cifake:real, cifake:synthetic, "
                "folder:/path/to/class_folders"
            )
        opener = SOURCES.get(source)  # fail early on unknown sources
        argument, options = _split_options(rest)
        if not argument:
            raise SynthgapError(f"bad data reference {text!r}: nothing before the options")
        _check_options(source, opener, options)
        return cls(source, argument, options)

    def __str__(self) -> str:
        query = "&".join(f"{name}={value}" for name, value in self.options)
        return f"{self.source}:{self.argument}" + (f"?{query}" if query else "")


def _split_options(rest: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    match = OPTIONS_SUFFIX.match(rest)
    if match is None:
        return rest, ()
    pairs = [pair.partition("=") for pair in match.group("options").split("&")]
    return match.group("argument"), tuple((name, value) for name, _, value in pairs)


def _check_options(source: str, opener: SourceOpener, options: tuple[tuple[str, str], ...]) -> None:
    names = [name for name, _ in options]
    allowed = source_options(opener)
    for name in names:
        if not allowed:
            raise SynthgapError(f"data source {source!r} takes no options (got {name})")
        if name not in allowed:
            raise SynthgapError(
                f"unknown option {name!r} for {source}: sources; choose from: {', '.join(sorted(allowed))}"
            )
        if names.count(name) > 1:
            raise SynthgapError(f"option {name!r} given twice in a {source}: reference")
    empty = [name for name, value in options if not value.strip()]
    if empty:
        raise SynthgapError(f"option {empty[0]!r} of a {source}: reference has no value")


def source_options(opener: SourceOpener) -> frozenset[str]:
    """The options a source accepts: its opener's keyword-only parameters (one place declares them)."""
    parameters = inspect.signature(opener).parameters.values()
    return frozenset(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def open_source(
    ref: str | DataRef,
    split: str = "train",
    data_root: Path | str | None = None,
    *,
    classes: Sequence[str] | None = None,
) -> LabelledIndex:
    """Index the images of a data reference. `split` is "train" or "test" (a plain class-folder root and a
    generated set serve both splits from the same images).

    With `classes`, the index is relabelled to that class order (the same class set, e.g. another side's order),
    so that label i means the same class on every side; a different class set is an error naming the differences.
    """
    ref = DataRef.parse(ref) if isinstance(ref, str) else ref
    index = SOURCES.get(ref.source)(ref.argument, split, Path(data_root) if data_root else None, **dict(ref.options))
    return index if classes is None else index.reordered(classes)


def resolve_data_root(data_root: Path | None) -> Path:
    if data_root is None:
        env = os.environ.get(DATA_ROOT_ENV)
        if not env:
            raise SynthgapError(
                f"no data root: pass --data-root DIR or set {DATA_ROOT_ENV}=DIR, where DIR/cifake holds CIFAKE; "
                f"to get it, {CIFAKE_HOWTO.format(root='DIR')}"
            )
        data_root = Path(env)
    return data_root.expanduser()


def cifake_dir(data_root: Path | None) -> Path:
    root = resolve_data_root(data_root)
    for candidate in (root / "cifake", root):
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            return candidate
    raise SynthgapError(
        f"CIFAKE not found under {root}: {CIFAKE_HOWTO.format(root='<root>')}, then pass --data-root <root> or set "
        f"{DATA_ROOT_ENV}=<root>"
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


def cifake_folder(side: str, split: str, data_root: Path | None) -> Path:
    """The folder of one CIFAKE side and split (side and split checked, the folder not: it may be missing)."""
    if side not in CIFAKE_SIDES:
        raise SynthgapError(f"unknown CIFAKE side {side!r}; choose from: {', '.join(CIFAKE_SIDES)}")
    if split not in ("train", "test"):
        raise SynthgapError(f"unknown CIFAKE split {split!r}; choose train or test")
    return cifake_dir(data_root) / split / CIFAKE_SIDES[side]


@SOURCES.register("cifake")
def open_cifake(side: str, split: str, data_root: Path | None) -> LabelledIndex:
    folder = cifake_folder(side, split, data_root)
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
    index = LabelledIndex.of_files(
        name=f"cifake:{side}/{split}",
        root=folder,
        layout="cifake",
        classes=CIFAR10_CLASSES,
        paths=tuple(e[2] for e in entries),
        labels=np.array([e[0] for e in entries], dtype=np.int64),
    )
    check_no_empty_class(index)
    return index


# --- folder: class folders at any depth, split roots, class maps -------------------------------------------------


class DataWarning(UserWarning):
    """Something about the data worth knowing that does not stop indexing (skipped links, unused map rows, ...)."""


@dataclass(frozen=True)
class FolderLayout:
    """Where a ``folder:`` root keeps its class folders: in split folders (a split root) or directly (both splits)."""

    root: Path
    splits: dict[str, Path]  # split folders by lower-case name, e.g. {"train": ..., "val": ...}; empty: plain root

    def folder(self, split: str) -> Path:
        """The folder whose sub-folders are the classes of `split`; a missing split folder is an error."""
        folder = self.split_folder(split)
        if folder is not None:
            return folder
        wanted = [f"{name}/" for name in SPLIT_FOLDERS[split]]
        wanted_text = wanted[0] if len(wanted) == 1 else f"{', '.join(wanted[:-1])} or {wanted[-1]}"
        raise SynthgapError(
            f"split root {self.root} has no {wanted_text} folder for the {split} split "
            f"(found: {', '.join(p.name + '/' for p in self.splits.values())})"
        )

    def split_folder(self, split: str) -> Path | None:
        """The folder `split` reads, or None when a split root lacks it."""
        if not self.splits:
            return self.root  # a plain ImageFolder serves every split, as it always did
        if split not in SPLIT_FOLDERS:
            raise SynthgapError(f"unknown split {split!r}; choose from: {', '.join(SPLIT_FOLDERS)}")
        return next((self.splits[name] for name in SPLIT_FOLDERS[split] if name in self.splits), None)

    def check_split_classes(self) -> None:
        """The train split and the test split (when both exist) must hold the same class folders."""
        train_folder, test_folder = self.split_folder("train"), self.split_folder("test")
        if train_folder is None or test_folder is None or train_folder == test_folder:
            return  # a missing split is reported when that split is opened
        train, test = ({d.name for d in visible_folders(f)} for f in (train_folder, test_folder))
        if train != test:
            raise SynthgapError(
                f"split folders of {self.root} hold different classes: only in {train_folder.name}/: "
                f"{sorted(train - test) or 'none'}; only in {test_folder.name}/: {sorted(test - train) or 'none'}"
            )

    def describe(self) -> str:
        if not self.splits:
            return f"class folders ({self.root})"
        reads = []
        for split in SPLIT_FOLDERS:
            folder = self.split_folder(split)
            reads.append(f"{split} split reads {folder.name}/" if folder else f"no {split} split")
        return f"split root of class folders ({self.root}: {', '.join(reads)})"


def folder_layout(root: Path) -> FolderLayout:
    """A root whose folders are all split names (train, val, test, validation) is a split root; else plain."""
    folders = visible_folders(root)
    split_like = [d for d in folders if d.name.lower() in SPLIT_NAMES]
    if split_like and len(split_like) == len(folders):
        return FolderLayout(root, {d.name.lower(): d for d in split_like})
    if len(split_like) >= 2:  # one class called "train" is plausible (vehicles); two split names rarely are
        warnings.warn(
            f"{root}: folders named like splits ({', '.join(d.name for d in split_like)}) beside other folders are "
            "read as classes; to use them as splits, move every class folder into the split folders",
            DataWarning,
            stacklevel=2,
        )
    return FolderLayout(root, {})


def visible_folders(folder: Path) -> list[Path]:
    """Sub-folders (links followed), sorted by name, without hidden ones or, in a `synthgap generate` output folder,
    its bookkeeping folders. Elsewhere a class may be called "previews"."""
    generated = any((folder / marker).exists() for marker in GENERATOR_MARKERS)
    ignored = GENERATOR_FOLDERS if generated else frozenset()
    return sorted(
        (Path(e.path) for e in _entries(folder) if e.is_dir() and e.name not in ignored), key=lambda p: p.name
    )


def find_images(folder: Path, *, above: tuple[Path, ...] = ()) -> list[Path]:
    """Image files at any depth under `folder`, following directory and file links, sorted; hidden entries skipped.

    Each real directory is read once: a link to a folder already indexed (a loop, a second link to the same folder,
    or a link back up to one of `above`) is skipped with one warning, so a loop can never recurse forever and no
    image is counted twice. Broken links are skipped with a warning.
    """
    seen = {_identity(p) for p in above}
    images: list[Path] = []
    revisits: list[Path] = []
    broken: list[Path] = []
    stack = [folder]
    while stack:
        current = stack.pop()
        identity = _identity(current)
        if identity in seen:
            revisits.append(current)
            continue
        seen.add(identity)
        subfolders = []
        for entry in _entries(current):
            if entry.is_dir():
                subfolders.append(Path(entry.path))
            elif entry.is_file():
                if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    images.append(Path(entry.path))
            elif entry.is_symlink():
                broken.append(Path(entry.path))
        stack.extend(reversed(subfolders))  # depth first in name order: the same tree always walks the same way
    _warn_skipped(folder, revisits, broken)
    return sorted(images)


def _entries(folder: Path) -> list[os.DirEntry]:
    """Non-hidden entries of a folder, sorted by name."""
    try:
        with os.scandir(folder) as scan:
            return sorted((e for e in scan if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise SynthgapError(f"cannot read folder {folder}: {exc.strerror}") from None


def _identity(folder: Path) -> tuple[int, int]:
    stat = os.stat(folder)  # follows links: two paths to one directory share (device, inode)
    return stat.st_dev, stat.st_ino


def _warn_skipped(folder: Path, revisits: list[Path], broken: list[Path]) -> None:
    if revisits:
        warnings.warn(
            f"{folder}: skipped {len(revisits)} link(s) to a folder already indexed (a link loop, or a second link to "
            f"the same folder), e.g. {revisits[0]}",
            DataWarning,
            stacklevel=3,
        )
    if broken:
        warnings.warn(f"{folder}: skipped {len(broken)} broken link(s), e.g. {broken[0]}", DataWarning, stacklevel=3)


@dataclass(frozen=True)
class ClassMap:
    """Paths relative to the class-folder level (a class folder, a folder inside it, or a file) → class names."""

    path: Path
    rows: dict[tuple[str, ...], str]

    def match(self, parts: tuple[str, ...]) -> tuple[str, ...] | None:
        """The longest row path that is `parts` or a folder above it."""
        parts = tuple(unicodedata.normalize("NFC", p) for p in parts)  # macOS may store names decomposed
        return next((parts[:end] for end in range(len(parts), 0, -1) if parts[:end] in self.rows), None)

    def label(self, folder: Path, images: list[Path]) -> tuple[tuple[str, ...], list[Path], list[int]]:
        """(classes sorted by name, paths grouped by class, labels) for the images found under `folder`."""
        keys = [self.match(p.relative_to(folder).parts) for p in images]
        unmapped = [p for p, key in zip(images, keys, strict=True) if key is None]
        if unmapped:
            folders = sorted({p.relative_to(folder).parent.as_posix() for p in unmapped})
            raise SynthgapError(
                f"class map {self.path} does not map {len(unmapped)} images in {folder}: in {_shown(folders)}; add a "
                "'folder,class' row for each (a row for a folder covers everything below it)"
            )
        self._warn_unused(folder, set(keys))
        names = [self.rows[key] for key in keys if key is not None]
        classes = tuple(sorted(set(names)))
        position = {name: i for i, name in enumerate(classes)}
        labels = [position[name] for name in names]
        order = sorted(range(len(images)), key=labels.__getitem__)  # stable: grouped by class, paths still sorted
        return classes, [images[i] for i in order], [labels[i] for i in order]

    def _warn_unused(self, folder: Path, used: set[tuple[str, ...] | None]) -> None:
        unused = sorted("/".join(key) for key in self.rows.keys() - used)
        if unused:
            warnings.warn(
                f"class map {self.path}: {len(unused)} row(s) match no image in {folder}: {_shown(unused)}",
                DataWarning,
                stacklevel=3,
            )


def read_class_map(path: Path) -> ClassMap:
    """A CSV with a ``folder,class`` header; each row maps a relative path to a class (see docs/data.md)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SynthgapError(f"class map not found: {path} (expected a CSV with a 'folder,class' header)")
    reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    header = [name.strip().lower() for name in next(reader, [])]
    if not set(CLASS_MAP_COLUMNS) <= set(header):
        raise SynthgapError(f"class map {path}: the header must name the columns 'folder,class', got {header}")
    at_folder, at_class = (header.index(name) for name in CLASS_MAP_COLUMNS)
    rows: dict[tuple[str, ...], str] = {}
    lines: dict[tuple[str, ...], list[int]] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        row += [""] * (len(header) - len(row))
        key = _map_key(row[at_folder], path, reader.line_num)
        name = row[at_class].strip()
        if not name:
            raise SynthgapError(f"class map {path}, line {reader.line_num}: empty class for {row[at_folder]!r}")
        rows[key] = name
        lines.setdefault(key, []).append(reader.line_num)
    repeated = [f"'{'/'.join(key)}' more than once (lines {_numbers(at)})" for key, at in lines.items() if len(at) > 1]
    if repeated:
        raise SynthgapError(f"class map {path}: folder {'; '.join(repeated)}")
    if not rows:
        raise SynthgapError(f"class map {path} has no rows (expected 'folder,class' rows after the header)")
    return ClassMap(path, rows)


def _shown(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names[:SHOW]) + (", ..." if len(names) > SHOW else "")


def _numbers(values: list[int]) -> str:
    return ", ".join(str(v) for v in values)


def _map_key(text: str, path: Path, line: int) -> tuple[str, ...]:
    pure = PurePosixPath(text.strip())
    parts = tuple(unicodedata.normalize("NFC", p) for p in pure.parts)  # PurePosixPath drops "." and a trailing "/"
    if not parts or pure.is_absolute() or ".." in parts:
        raise SynthgapError(
            f"class map {path}, line {line}: {text!r} is not a path inside the class folders "
            "(write a class folder name, or a relative path such as dogs/beagle)"
        )
    return parts


@SOURCES.register("folder")
def open_folder(path: str, split: str, data_root: Path | None, *, class_map: str | None = None) -> LabelledIndex:
    """Class folders ``<path>/<class>/**/<image>`` (classes sorted by name; links followed), or in a split root
    ``<path>/train/<class>/...`` for split "train" and ``<path>/test/`` (else ``val/``) for "test". With `class_map`
    (a CSV path), classes come from the map instead of the folder names. See docs/data.md."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SynthgapError(f"image folder not found: {root}")
    layout = folder_layout(root)
    folder = layout.folder(split)
    layout.check_split_classes()
    class_dirs = visible_folders(folder)
    if not class_dirs:
        raise SynthgapError(f"no class folders in {folder} (expected <root>/<class>/<image files>)")
    found = {d.name: find_images(d, above=(root, folder)) for d in class_dirs}
    if class_map is None:
        classes = tuple(found)
        paths = [p for files in found.values() for p in files]
        labels = [label for label, files in enumerate(found.values()) for _ in files]
    else:
        classes, paths, labels = read_class_map(Path(class_map)).label(folder, [p for f in found.values() for p in f])
    index = LabelledIndex.of_files(
        name=f"folder:{folder}" + (f"?class_map={class_map}" if class_map else ""),
        root=folder,
        layout="folder",
        classes=classes,
        paths=tuple(paths),
        labels=np.array(labels, dtype=np.int64),
    )
    check_no_empty_class(index)
    return index


def check_no_empty_class(index: LabelledIndex) -> None:
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
