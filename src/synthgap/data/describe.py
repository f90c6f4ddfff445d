"""`synthgap data describe DATA`: what a data folder or a data reference holds, before any training.

DATA is a folder (its layout detected: a CIFAKE root, class folders, a split root, a `synthgap generate` output) or
any data reference a spec takes (``cifake:real``, ``folder:DIR?class_map=...``, ``generated:DIR``, ``hf:...``,
``imagenet100:DIR``). A source with a describer in `DESCRIBERS` writes its own head; any other is described by the
splits a spec's sides would read from it.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from synthgap.data.index import LabelledIndex
from synthgap.data.sources import (
    CIFAKE_SIDES,
    GENERATOR_MARKERS,
    SOURCES,
    SPLIT_FOLDERS,
    DataRef,
    cifake_folder,
    detect_layout,
    folder_layout,
    open_cifake,
    open_folder,
    open_source,
)
from synthgap.errors import SynthgapError
from synthgap.registry import Registry

IMBALANCE_RATIO = 3.0  # largest / smallest class above this is flagged
SOURCE_PREFIX = re.compile(r"^[a-z][a-z0-9_]*:")  # a data reference's start (a path's too: see _is_reference)
# (reference, data root) -> (head lines, an index per data set); the data root serves sources that need one (cifake)
Describer = Callable[[DataRef, Path | None], tuple[str, list[LabelledIndex]]]
DESCRIBERS: Registry[Describer] = Registry("described data source")


def describe(
    data: Path | str, *, sample: int = 2000, class_map: Path | None = None, data_root: Path | None = None
) -> str:
    """The layout of a data folder or reference, then per data set: images per class, balance, sizes and modes.

    `class_map` (a ``folder,class`` CSV) groups the class folders of a ``folder`` layout as ``?class_map=`` does;
    `data_root` is where ``cifake:`` references look (default: ``$SYNTHGAP_DATA_ROOT``).
    """
    text = str(data)
    if _is_reference(text):
        ref = _with_class_map(DataRef.parse(text), class_map)
        describer = DESCRIBERS.get(ref.source) if ref.source in DESCRIBERS else describe_splits
        head, indexes = describer(ref, data_root)
    else:
        head, indexes = _describe_path(Path(text).expanduser(), class_map)
    return "\n\n".join([head, *(describe_index(index, sample) for index in indexes)])


def _is_reference(text: str) -> bool:
    """A known source's prefix makes a reference; an unknown one too when no such path exists (so a mistyped
    source is named as such, while a folder called ``a:b`` still reads as a folder)."""
    source, colon, _ = text.partition(":")
    if not colon:
        return False
    return source in SOURCES or (SOURCE_PREFIX.match(text) is not None and not Path(text).expanduser().exists())


def _with_class_map(ref: DataRef, class_map: Path | None) -> DataRef:
    """`--class-map` given with a reference: the ``?class_map=`` option of a ``folder:`` reference."""
    if class_map is None:
        return ref
    if ref.source != "folder":
        raise SynthgapError(f"a class map applies to class folders (folder:DIR); {ref} is a {ref.source}: reference")
    if "class_map" in dict(ref.options):
        raise SynthgapError(f"{ref} names a class map already; drop --class-map {class_map}")
    return DataRef(ref.source, ref.argument, (*ref.options, ("class_map", str(class_map))))


def _describe_path(path: Path, class_map: Path | None) -> tuple[str, list[LabelledIndex]]:
    """A folder, its layout detected: a generated set, a CIFAKE root (both sides, both splits) or class folders."""
    if not path.exists():
        raise SynthgapError(f"no such folder: {path}")
    generated = any((path / marker).exists() for marker in GENERATOR_MARKERS)
    layout = "generated" if generated else detect_layout(path)
    if class_map is not None and layout != "folder":
        raise SynthgapError(f"a class map applies to class folders; {path} has the {layout} layout")
    if layout == "generated":
        return DESCRIBERS.get("generated")(DataRef("generated", str(path)), None)
    if layout == "cifake-side":
        raise SynthgapError(f"{path} looks like one CIFAKE side folder; describe the CIFAKE root above it instead")
    if layout == "cifake":
        root = path / "cifake" if (path / "cifake").is_dir() else path
        indexes = [
            open_cifake(side, split, root)
            for split in ("train", "test")
            for side in CIFAKE_SIDES
            if (root / split / CIFAKE_SIDES[side]).is_dir()
        ]
        return f"layout: CIFAKE ({root})", indexes
    return _folder_indexes(path, class_map)


def describe_splits(ref: DataRef, data_root: Path | None) -> tuple[str, list[LabelledIndex]]:
    """Any source: the data sets its train and test splits read (one when both read the same images)."""
    indexes: list[LabelledIndex] = []
    for split in ("train", "test"):
        index = open_source(ref, split, data_root)
        if all(index.name != seen.name for seen in indexes):
            indexes.append(index)
    return f"source: {ref}", indexes


@DESCRIBERS.register("folder")
def describe_folder(ref: DataRef, data_root: Path | None) -> tuple[str, list[LabelledIndex]]:
    """``folder:DIR[?class_map=CSV]``: read as class folders (or a split root), whatever else DIR may hold."""
    path = Path(ref.argument).expanduser()
    if not path.is_dir():
        raise SynthgapError(f"image folder not found: {path}")
    class_map = dict(ref.options).get("class_map")
    return _folder_indexes(path, Path(class_map) if class_map else None)


@DESCRIBERS.register("cifake")
def describe_cifake_side(ref: DataRef, data_root: Path | None) -> tuple[str, list[LabelledIndex]]:
    """``cifake:real`` / ``cifake:synthetic``: that side's train and test splits under the data root."""
    side = ref.argument
    splits = [split for split in ("train", "test") if cifake_folder(side, split, data_root).is_dir()]
    indexes = [open_cifake(side, split, data_root) for split in splits or ["train"]]  # none: train names the folder
    root = cifake_folder(side, "train", data_root).parent.parent
    return f"layout: CIFAKE, {side} side ({root})", indexes


def _folder_indexes(path: Path, class_map: Path | None) -> tuple[str, list[LabelledIndex]]:
    """One index for a plain class-folder root, one per split of a split root."""
    layout = folder_layout(path)
    options = {} if class_map is None else {"class_map": str(class_map)}
    splits = ["train"]
    if layout.splits:
        splits = [split for split in SPLIT_FOLDERS if layout.split_folder(split) is not None]
    head = f"layout: {layout.describe()}"
    if class_map is not None:
        head += f"\nclass map: {class_map}"
    return head, [open_folder(str(path), split, None, **options) for split in splits]


def describe_index(index: LabelledIndex, sample: int) -> str:
    counts = index.counts()
    width = max(len(name) for name in counts)
    lines = [f"{index.name}: {len(index)} images, {len(counts)} classes"]
    lines += [f"  {name:<{width}}  {count:>7}" for name, count in counts.items()]
    lines += balance_lines(counts)
    sizes, modes, unreadable = _peek(index, sample)
    seen = sum(sizes.values())
    lines.append("  sizes: " + ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(5)) + f"  [{seen} read]")
    lines.append("  modes: " + ", ".join(f"{m} ({n})" for m, n in modes.most_common()))
    if unreadable:
        lines.append(f"  unreadable: {len(unreadable)} of the sample, e.g. {unreadable[0]}")
    return "\n".join(lines)


def balance_lines(counts: dict[str, int]) -> list[str]:
    """Images per class as min/median/max, and a flag when the largest class outweighs the smallest by > 3×."""
    values = list(counts.values())
    smallest, largest = min(values), max(values)
    lines = [f"  per class: min {smallest}, median {statistics.median(values):g}, max {largest}"]
    if largest > IMBALANCE_RATIO * smallest:
        small_name = min(counts, key=counts.__getitem__)
        large_name = max(counts, key=counts.__getitem__)
        ratio = largest / smallest if smallest else float("inf")
        lines.append(
            f"  imbalanced: largest class {largest} images ({large_name}), smallest {smallest} ({small_name}); "
            f"ratio {ratio:.1f}"
        )
    return lines


def _peek(index: LabelledIndex, sample: int) -> tuple[Counter, Counter, list[str]]:
    """Sizes and modes from image headers (no decoding) of an evenly spaced sample."""
    step = max(1, len(index) // max(1, sample))
    sizes: Counter = Counter()
    modes: Counter = Counter()
    unreadable: list[str] = []
    for position in range(0, len(index), step)[:sample]:
        try:
            with index.items.open(position) as im:
                sizes[im.size] += 1
                modes[im.mode] += 1
        except (OSError, SyntaxError):
            unreadable.append(index.items.name(position))
    return sizes, modes, unreadable
