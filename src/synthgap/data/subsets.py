"""Stratified, seeded, nested subsets.

Each class gets one seeded permutation of its images that does not depend on how many are asked for; a subset takes
a prefix of every class's permutation. So, for one seed, a smaller subset is always contained in a larger one —
what data-reduction curves need to be comparable across fractions.
"""

from __future__ import annotations

import hashlib

import numpy as np

from synthgap.errors import SynthgapError


def class_permutation(labels: np.ndarray, label: int, class_name: str, seed: int) -> np.ndarray:
    """Positions of one class's images in a seeded order (stable across runs and Python processes)."""
    positions = np.flatnonzero(labels == label)
    digest = hashlib.sha256(f"{seed}:{class_name}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return positions[rng.permutation(len(positions))]


def stratified_positions(
    labels: np.ndarray,
    classes: tuple[str, ...],
    *,
    per_class: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    at_most: bool = False,
) -> np.ndarray:
    """Sorted positions of a stratified subset: `per_class` images of every class (with `at_most`, up to that many:
    smaller classes keep all theirs), or `fraction` of each class.

    A fraction keeps round(fraction × class size) images, at least one, so tiny fractions never empty a class.
    """
    if (per_class is None) == (fraction is None):
        raise SynthgapError("give exactly one of per_class or fraction for a subset")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise SynthgapError(f"subset fraction must be in (0, 1], got {fraction}")
    if per_class is not None and per_class < 1:
        raise SynthgapError(f"images per class must be at least 1, got {per_class}")
    chosen = []
    for label, name in enumerate(classes):
        order = class_permutation(labels, label, name, seed)
        if per_class is not None:
            if per_class > len(order) and not at_most:
                raise SynthgapError(f"class {name!r} has {len(order)} images, fewer than the {per_class} asked for")
            keep = min(per_class, len(order))
        else:
            keep = max(1, round(fraction * len(order)))
        chosen.append(order[:keep])
    return np.sort(np.concatenate(chosen))
