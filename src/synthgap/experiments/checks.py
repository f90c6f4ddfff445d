"""Checks of a spec against its data that need the files but no decoding: shared by --dry-run and the runner, so
both reject the same things with the same message."""

from __future__ import annotations

from synthgap.data.index import LabelledIndex, align_classes
from synthgap.data.sources import open_source
from synthgap.errors import SynthgapError
from synthgap.experiments.spec import ExperimentSpec


def open_spec_sources(spec: ExperimentSpec) -> dict[str, LabelledIndex]:
    """Every image set the spec reads, indexed (not decoded) and labelled in the test set's class order, keyed
    "<ref> (<split>)"; checks that the class sets agree and that every set has enough images per class for
    `per_class` / `test_per_class`."""
    uses = [(ref, "train") for ref in spec.training_refs()] + [(spec.data.test, "test")]
    opened = [open_source(ref, split, spec.data.data_root) for ref, split in uses]
    # every side is labelled in the test set's class order; a different class set is an error naming the classes
    aligned = align_classes([opened[-1], *opened[:-1]])
    indexes = {f"{ref} ({split})": index for (ref, split), index in zip(uses, [*aligned[1:], aligned[0]], strict=True)}
    shortages = []
    for (_ref, split), (name, index) in zip(uses, indexes.items(), strict=True):
        wanted = spec.data.test_per_class if split == "test" else spec.data.per_class
        shortages += class_shortage(name, index, wanted, "test_per_class" if split == "test" else "per_class")
    if shortages:  # every short side at once: fixing one and rerunning to meet the next wastes the user's time
        raise SynthgapError("; ".join(shortages))
    return indexes


def class_shortage(name: str, index: LabelledIndex, wanted: object, option: str) -> list[str]:
    """A message naming the side and every class of `index` with fewer than `wanted` images, when there are any. (The
    other forms of `per_class` — {max: N}, balanced, matched — fit any class.)"""
    if not isinstance(wanted, int):
        return []
    short = {cls: count for cls, count in index.counts().items() if count < wanted}
    if not short:
        return []
    listed = ", ".join(f"{cls} ({count})" for cls, count in sorted(short.items(), key=lambda item: item[1]))
    return [f"{option}={wanted}, but {name} has fewer images in {len(short)} class(es): {listed}"]
