"""`synthgap data describe PATH`: what a data folder (or a source that describes itself, `DESCRIBERS`) holds, before
any training."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from synthgap.data.index import LabelledIndex
from synthgap.data.sources import (
    CIFAKE_SIDES,
    SPLIT_FOLDERS,
    detect_layout,
    folder_layout,
    open_cifake,
    open_folder,
)
from synthgap.errors import SynthgapError
from synthgap.registry import Registry

IMBALANCE_RATIO = 3.0  # largest / smallest class above this is flagged
# Sources that are not folders describe themselves: reference text -> (head lines, an index per split)
Describer = Callable[[str], tuple[str, list[LabelledIndex]]]
DESCRIBERS: Registry[Describer] = Registry("described data source")


def describe(path: Path | str, *, sample: int = 2000, class_map: Path | None = None) -> str:
    """The detected layout of a data folder, then per data set: images per class, balance, sizes and modes.

    `class_map` (a ``folder,class`` CSV) groups the class folders of a ``folder`` layout as ``?class_map=`` does.
    """
    source = str(path).partition(":")[0]
    if source in DESCRIBERS:  # a data reference whose source describes itself (hf:...)
        head, indexes = DESCRIBERS.get(source)(str(path))
        return "\n\n".join([head, *(describe_index(index, sample) for index in indexes)])
    path = Path(path)
    if not path.exists():
        raise SynthgapError(f"no such folder: {path}")
    layout = detect_layout(path)
    if class_map is not None and layout != "folder":
        raise SynthgapError(f"a class map applies to class folders; {path} has the {layout} layout")
    if layout == "cifake":
        root = path / "cifake" if (path / "cifake").is_dir() else path
        indexes = [
            open_cifake(side, split, root)
            for split in ("train", "test")
            for side in CIFAKE_SIDES
            if (root / split / CIFAKE_SIDES[side]).is_dir()
        ]
        head = f"layout: CIFAKE ({root})"
    elif layout == "cifake-side":
        raise SynthgapError(f"{path} looks like one CIFAKE side folder; describe the CIFAKE root above it instead")
    else:
        indexes, head = _folder_indexes(path, class_map)
    return "\n\n".join([head, *(describe_index(index, sample) for index in indexes)])


def _folder_indexes(path: Path, class_map: Path | None) -> tuple[list[LabelledIndex], str]:
    """One index for a plain class-folder root, one per split of a split root."""
    layout = folder_layout(path)
    options = {} if class_map is None else {"class_map": str(class_map)}
    splits = ["train"]
    if layout.splits:
        splits = [split for split in SPLIT_FOLDERS if layout.split_folder(split) is not None]
    head = f"layout: {layout.describe()}"
    if class_map is not None:
        head += f"\nclass map: {class_map}"
    return [open_folder(str(path), split, None, **options) for split in splits], head


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
