"""A labelled index: which images belong to which class, before anything is decoded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from synthgap.data.items import FileItems, ImageItems
from synthgap.errors import SynthgapError


@dataclass(frozen=True, eq=False)
class LabelledIndex:
    """Images (files, dataset rows: `data/items.py`) with integer labels into `classes`. Positions are stable:
    sources sort their files, datasets keep their row order."""

    name: str  # e.g. "cifake:real/train"
    root: Path
    layout: str  # "cifake" | "folder" | ...
    classes: tuple[str, ...]
    items: ImageItems
    labels: np.ndarray  # int64, one per image

    def __post_init__(self) -> None:
        if len(self.items) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.items)} images but {len(self.labels)} labels")

    @classmethod
    def of_files(
        cls, name: str, root: Path, layout: str, classes: tuple[str, ...], paths: Sequence[Path], labels: np.ndarray
    ) -> LabelledIndex:
        """An index of image files."""
        return cls(name, root, layout, classes, FileItems(tuple(paths)), labels)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def paths(self) -> tuple[Path, ...]:
        """The image files (an error naming the set when its images are not files)."""
        try:
            return self.items.paths
        except SynthgapError as exc:
            raise SynthgapError(f"{self.name}: {exc}") from None

    def counts(self) -> dict[str, int]:
        """Images per class, in class order (classes without images show 0)."""
        per_label = Counter(self.labels.tolist())
        return {name: per_label.get(i, 0) for i, name in enumerate(self.classes)}

    def reordered(self, classes: Sequence[str]) -> LabelledIndex:
        """The same images, labelled by `classes`: the same class set in another order (e.g. another side's)."""
        if tuple(classes) == self.classes:
            return self
        positions = class_positions(self.classes, classes, what=f"the indexed ({self.name}) and requested")
        return replace(self, classes=tuple(classes), labels=positions[self.labels])

    def select(self, positions: np.ndarray) -> LabelledIndex:
        positions = np.asarray(positions, dtype=np.int64)
        return LabelledIndex(
            name=self.name,
            root=self.root,
            layout=self.layout,
            classes=self.classes,
            items=self.items.select(positions),
            labels=self.labels[positions],
        )


def class_positions(classes: Sequence[str], order: Sequence[str], *, what: str = "indexed and requested") -> np.ndarray:
    """For each class of `classes`, its position in `order` (the same set): ``new_label = positions[old_label]``.

    Usable on any labels array, e.g. decoded tensors' labels: ``torch.from_numpy(positions)[labels]``.
    """
    check_same_class_set(classes, order, what=what)
    if len(set(order)) != len(order):
        repeated = sorted({name for name in order if list(order).count(name) > 1})
        raise SynthgapError(f"class order names {repeated} more than once")
    where = {name: i for i, name in enumerate(order)}
    return np.array([where[name] for name in classes], dtype=np.int64)


def align_classes(indexes: Sequence[LabelledIndex]) -> list[LabelledIndex]:
    """The indexes relabelled to the first one's class order, so label i is one class on every side.

    Sides may list their classes in different orders (a generated set follows its class list, a folder sorts by
    name); the images are matched by class name. A different class set is an error naming the differences.
    """
    first = indexes[0]
    for other in indexes[1:]:
        check_same_class_set(first.classes, other.classes, what=f"{first.name} and {other.name}")
    return [index.reordered(first.classes) for index in indexes]


def check_same_class_set(first: Sequence[str], second: Sequence[str], *, what: str = "real and synthetic") -> None:
    """The two sides must name the same classes (in any order)."""
    only_a = sorted(set(first) - set(second))
    only_b = sorted(set(second) - set(first))
    if only_a or only_b:
        raise SynthgapError(
            f"{what} data have different classes: only in the first: {only_a or 'none'}; "
            f"only in the second: {only_b or 'none'}"
        )


def check_same_classes(real: Sequence[str], synthetic: Sequence[str], *, what: str = "real and synthetic") -> None:
    """Real and synthetic sides must share one class list (same names, same order), or labels would silently differ.

    Sides opened separately may list the same classes in different orders: align them first (``align_classes``,
    ``LabelledIndex.reordered`` or ``open_source(..., classes=...)``), then this check passes.
    """
    if tuple(real) == tuple(synthetic):
        return
    check_same_class_set(real, synthetic, what=what)
    raise SynthgapError(
        f"{what} data list the same classes in a different order: {list(real)} vs {list(synthetic)}; labels are "
        "matched by class name once one side is reordered to the other's order (align_classes, "
        "LabelledIndex.reordered or open_source(..., classes=...)) before the data are compared"
    )
