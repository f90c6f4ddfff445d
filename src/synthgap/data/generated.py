"""The ``generated`` source: the output folder of ``synthgap generate`` (an ImageFolder tree + ``manifest.jsonl``).

Reference: ``generated:/path/to/out``. Classes follow the manifest's class order (the class list the images were
generated from: for ImageNet-100 the sorted wnids, for CIFAR-10 the CIFAR order), so a generated set lines up with
the real source of the same classes. A class list in another order (a .txt not sorted like the real folder's class
names) gives the same classes in another order: sides are matched by class id with ``align_classes`` or
``open_source(..., classes=...)`` (data/index.py, data/sources.py), never by position. The split is ignored: a
generated set has only training images. The manifest exists only once every shard has finished, so an unfinished
run is refused rather than read half-way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from synthgap.data.index import LabelledIndex
from synthgap.data.sources import SOURCES
from synthgap.errors import SynthgapError

MANIFEST = "manifest.jsonl"


def read_generated_manifest(root: Path) -> list[dict]:
    path = root / MANIFEST
    if not path.is_file():
        raise SynthgapError(
            f"no {MANIFEST} in {root}: generation not finished or not a synthgap generate output "
            "(rerun the same `synthgap generate` command, every shard, to complete it)"
        )
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise SynthgapError(f"corrupt {path}: {exc}") from None


@SOURCES.register("generated")
def open_generated(path: str, split: str, data_root: Path | None) -> LabelledIndex:
    """Index the images listed in ``<path>/manifest.jsonl`` (`split` and `data_root` are unused)."""
    root = Path(path).expanduser()
    records = read_generated_manifest(root)
    if not records:
        raise SynthgapError(f"{root / MANIFEST} lists no images")
    classes: dict[str, int] = {}
    for record in records:  # first appearance order = the generation's class order
        classes.setdefault(record["class"], len(classes))
    paths = tuple(root / record["file"] for record in records)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise SynthgapError(f"{len(missing)} images listed in {root / MANIFEST} are missing, e.g. {missing[0]}")
    return LabelledIndex(
        name=f"generated:{root}",
        root=root,
        layout="generated",
        classes=tuple(classes),
        paths=paths,
        labels=np.array([classes[record["class"]] for record in records], dtype=np.int64),
    )
