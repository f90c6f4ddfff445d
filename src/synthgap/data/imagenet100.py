"""The ``imagenet100`` source: the 100-class ImageNet subset of CMC (Tian et al. 2019, "Contrastive Multiview Coding").

The class list is ``imagenet100.txt`` of the CMC repository (github.com/HobbitLong/CMC), shipped in the package as
``imagenet100_classes.json`` in that file's order, with names from the standard ImageNet synset mapping
(``LOC_synset_mapping.txt``). Reference: ``imagenet100:/path/to/imagenet``, an ImageNet root whose ``train/`` and
``val/`` hold one ``<wnid>/`` folder per class (the usual layout after re-foldering val). Split "train" reads
``train/``, "test" reads ``val/``. Files are indexed in place, never copied; folders of other classes are ignored.
Classes are the 100 wnids sorted, as torchvision's ImageFolder over those folders would order them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from synthgap.data.index import LabelledIndex
from synthgap.data.sources import SOURCES, find_images
from synthgap.errors import SynthgapError

CLASSES_FILE = "imagenet100_classes.json"
SPLIT_DIRS = {"train": "train", "test": "val"}
N_CLASSES = 100
SHOW_MISSING = 5


def load_imagenet100_classes() -> list[dict]:
    """The 100 classes as ``{"wnid", "name", "synonyms"}`` dicts, in the order of CMC's ``imagenet100.txt``."""
    text = resources.files("synthgap.data").joinpath(CLASSES_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def imagenet100_wnids() -> tuple[str, ...]:
    """The 100 WordNet ids, sorted (the index's class order)."""
    return tuple(sorted(entry["wnid"] for entry in load_imagenet100_classes()))


def _split_dir(root: Path, split: str) -> Path:
    if split not in SPLIT_DIRS:
        raise SynthgapError(f"unknown imagenet100 split {split!r}; choose from: {', '.join(SPLIT_DIRS)}")
    if not root.is_dir():
        raise SynthgapError(f"ImageNet root not found: {root} (expected <root>/train/<wnid>/ and <root>/val/<wnid>/)")
    folder = root / SPLIT_DIRS[split]
    if not folder.is_dir():
        raise SynthgapError(
            f"ImageNet {SPLIT_DIRS[split]}/ folder missing: {folder} (expected <root>/{SPLIT_DIRS[split]}/<wnid>/ "
            "class folders; re-folder val into <wnid>/ folders if it is flat)"
        )
    return folder


def _scan(folder: Path, wnids: tuple[str, ...]) -> tuple[list[Path], list[int]]:
    missing = [wnid for wnid in wnids if not (folder / wnid).is_dir()]
    if missing:
        shown = ", ".join(missing[:SHOW_MISSING]) + (", ..." if len(missing) > SHOW_MISSING else "")
        raise SynthgapError(
            f"{len(missing)} of the {len(wnids)} imagenet100 class folders missing in {folder}: {shown}"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        files = find_images(folder / wnid, above=(folder,))  # links followed; a link loop is skipped, not walked
        if not files:
            raise SynthgapError(f"imagenet100: no images in class folder {folder / wnid}")
        paths += files
        labels += [label] * len(files)
    return paths, labels


@SOURCES.register("imagenet100")
def open_imagenet100(path: str, split: str, data_root: Path | None) -> LabelledIndex:
    """Index ``<path>/{train,val}/<wnid>/*`` for the 100 CMC classes (`data_root` is unused: the path is explicit)."""
    root = Path(path).expanduser()
    folder = _split_dir(root, split)
    wnids = imagenet100_wnids()
    paths, labels = _scan(folder, wnids)
    return LabelledIndex.of_files(
        name=f"imagenet100:{root}/{SPLIT_DIRS[split]}",
        root=folder,
        layout="imagenet100",
        classes=wnids,
        paths=tuple(paths),
        labels=np.array(labels, dtype=np.int64),
    )


def check_imagenet100_layout(root: Path) -> str:
    """Check both splits (folders and file names only, no image is read); a one-line summary, or SynthgapError."""
    root = Path(root).expanduser()
    wnids = imagenet100_wnids()
    folders = {split: _split_dir(root, split) for split in SPLIT_DIRS}  # both splits present before any scan
    parts = []
    for split, folder in folders.items():
        paths, labels = _scan(folder, wnids)
        parts.append(f"{SPLIT_DIRS[split]} {len(set(labels))} classes / {len(paths)} images")
    return f"imagenet100 at {root}: " + ", ".join(parts)
