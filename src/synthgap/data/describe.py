"""`synthgap data describe PATH`: what a data folder holds, before any training."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PIL import Image

from synthgap.data.index import LabelledIndex
from synthgap.data.sources import CIFAKE_SIDES, detect_layout, open_cifake, open_folder
from synthgap.errors import SynthgapError


def describe(path: Path, *, sample: int = 2000) -> str:
    path = Path(path)
    if not path.exists():
        raise SynthgapError(f"no such folder: {path}")
    layout = detect_layout(path)
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
        indexes = [open_folder(str(path), "train", None)]
        head = f"layout: class folders ({path})"
    return "\n\n".join([head, *(describe_index(index, sample) for index in indexes)])


def describe_index(index: LabelledIndex, sample: int) -> str:
    counts = index.counts()
    width = max(len(name) for name in counts)
    lines = [f"{index.name}: {len(index)} images, {len(counts)} classes"]
    lines += [f"  {name:<{width}}  {count:>7}" for name, count in counts.items()]
    sizes, modes, unreadable = _peek(index, sample)
    seen = sum(sizes.values())
    lines.append("  sizes: " + ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(5)) + f"  [{seen} read]")
    lines.append("  modes: " + ", ".join(f"{m} ({n})" for m, n in modes.most_common()))
    if unreadable:
        lines.append(f"  unreadable: {len(unreadable)} of the sample, e.g. {unreadable[0]}")
    return "\n".join(lines)


def _peek(index: LabelledIndex, sample: int) -> tuple[Counter, Counter, list[str]]:
    """Sizes and modes from image headers (no decoding) of an evenly spaced sample."""
    step = max(1, len(index) // max(1, sample))
    sizes: Counter = Counter()
    modes: Counter = Counter()
    unreadable: list[str] = []
    for path in index.paths[::step][:sample]:
        try:
            with Image.open(path) as im:
                sizes[im.size] += 1
                modes[im.mode] += 1
        except (OSError, SyntaxError):
            unreadable.append(str(path))
    return sizes, modes, unreadable
