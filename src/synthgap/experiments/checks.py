"""Checks of a spec against its data that need the files but no decoding: shared by --dry-run and the runner, so
both reject the same things with the same message."""

from __future__ import annotations

from synthgap.data.index import LabelledIndex, align_classes
from synthgap.errors import SynthgapError
from synthgap.experiments.plan import plan
from synthgap.experiments.runs import DataUse, Run
from synthgap.experiments.spec import ExperimentSpec
from synthgap.experiments.store import DataStore


def data_references(spec: ExperimentSpec, runs: list[Run] | None = None) -> list[DataUse]:
    """Every image set the runs of `spec` read (`Run.data_used`), once each in first-use order; the real test set
    last."""
    uses: list[DataUse] = []
    for run in plan(spec) if runs is None else runs:
        uses += run.data_used(spec).values()
    return [*dict.fromkeys(uses), DataUse(spec.data.test, "test")]


def open_spec_sources(
    spec: ExperimentSpec, store: DataStore, runs: list[Run] | None = None
) -> dict[str, LabelledIndex]:
    """Every image set the spec's runs read, indexed (not decoded; by `store`, which keeps the indexes for the runs)
    and labelled in the test set's class order, keyed "<ref> (<split>)"; checks that the class sets agree and that
    every set the spec's `per_class` (or `test_per_class`) applies to has that many images per class, and that
    every run can use the data's class list (`Run.check_classes`)."""
    runs = plan(spec) if runs is None else runs
    uses = data_references(spec, runs)
    test = (spec.data.test, "test")
    sets = [key for key in dict.fromkeys((use.ref, use.split) for use in uses) if key != test] + [test]
    opened = [store.source_index(ref, split) for ref, split in sets]
    # every side is labelled in the test set's class order; a different class set is an error naming the classes
    aligned = align_classes([opened[-1], *opened[:-1]])
    indexes = {f"{ref} ({split})": index for (ref, split), index in zip(sets, [*aligned[1:], aligned[0]], strict=True)}
    shortages = []
    for (ref, split), (name, index) in zip(sets, indexes.items(), strict=True):
        if split == "test":
            shortages += class_shortage(name, index, spec.data.test_per_class, "test_per_class")
        elif any(not use.all_images for use in uses if (use.ref, use.split) == (ref, split)):
            shortages += class_shortage(name, index, spec.data.per_class, "per_class")
    if shortages:  # every short side at once: fixing one and rerunning to meet the next wastes the user's time
        raise SynthgapError("; ".join(shortages))
    for run in runs:
        run.check_classes(aligned[0].classes)
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
