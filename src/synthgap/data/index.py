"""A labelled index: which image files belong to which class, before anything is decoded."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthgap.errors import SynthgapError


@dataclass(frozen=True, eq=False)
class LabelledIndex:
    """Image files with integer labels into `classes`. Positions are stable: sources sort their files."""

    name: str  # e.g. "cifake:real/train"
    root: Path
    layout: str  # "cifake" | "folder" | ...
    classes: tuple[str, ...]
    paths: tuple[Path, ...]
    labels: np.ndarray  # int64, one per path

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.paths)} paths but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        """Images per class, in class order (classes without images show 0)."""
        per_label = Counter(self.labels.tolist())
        return {name: per_label.get(i, 0) for i, name in enumerate(self.classes)}

    def select(self, positions: np.ndarray) -> LabelledIndex:
        positions = np.asarray(positions, dtype=np.int64)
        return LabelledIndex(
            name=self.name,
            root=self.root,
            layout=self.layout,
            classes=self.classes,
            paths=tuple(self.paths[i] for i in positions),
            labels=self.labels[positions],
        )


def check_same_classes(real: tuple[str, ...], synthetic: tuple[str, ...], *, what: str = "real and synthetic") -> None:
    """Real and synthetic sides must share one class list (same names, same order), or labels would silently differ."""
    if tuple(real) == tuple(synthetic):
        return
    only_a = sorted(set(real) - set(synthetic))
    only_b = sorted(set(synthetic) - set(real))
    if only_a or only_b:
        raise SynthgapError(
            f"{what} data have different classes: only in the first: {only_a or 'none'}; "
            f"only in the second: {only_b or 'none'}"
        )
    raise SynthgapError(f"{what} data list the same classes in a different order: {list(real)} vs {list(synthetic)}")
