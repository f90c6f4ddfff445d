"""A spec's data is resolved once: each (reference, split) it reads is indexed once per `synthgap run`, and each
image file is stat'd once, however many runs, checks, identities and decodings use it."""

from __future__ import annotations

from collections import Counter

import pytest

from synthgap import api
from synthgap.data import items, sources
from tests.specs import tiny_raw


@pytest.fixture
def walks(monkeypatch) -> Counter:
    """Counts the source openings (the walks of a folder) by (reference, split)."""
    counted: Counter = Counter()
    for name in sources.SOURCES.names():
        opener = sources.SOURCES.get(name)

        def counting(argument, split, data_root, *args, _opener=opener, _name=name, **options):
            counted[(f"{_name}:{argument}", split)] += 1
            return _opener(argument, split, data_root, *args, **options)

        monkeypatch.setitem(sources.SOURCES._items, name, counting)
    return counted


@pytest.fixture
def stats(monkeypatch) -> Counter:
    """Counts the identities (size and modification time) read of each image file."""
    counted: Counter = Counter()
    identities = items.FileItems.identities

    def counting(self):
        for path in self.files:
            counted[path] += 1
        return identities(self)

    monkeypatch.setattr(items.FileItems, "identities", counting)
    return counted


@pytest.mark.parametrize("per_class", [2, "matched"])
def test_each_reference_and_split_is_indexed_once_per_run(cifake_root, tmp_path, walks, stats, per_class):
    experiments = [{"kind": "baseline"}, {"kind": "layer_transfer", "n": [2], "directions": ["synthetic_to_real"]}]
    spec = tiny_raw(cifake_root, experiments, per_class=per_class)
    api.run(spec, out=tmp_path / "out", progress=False)
    assert dict(walks) == {
        ("cifake:real", "train"): 1,
        ("cifake:synthetic", "train"): 1,
        ("cifake:real", "test"): 1,
    }
    assert set(stats.values()) == {1}


def test_an_outside_teacher_is_checked_against_the_indexed_class_list(cifake_root, tmp_path, walks):
    """The teacher's class list is compared with the one the pre-flight check has indexed, not with a walk of its
    own when the runs are planned."""
    import json

    from synthgap.data.sources import CIFAR10_CLASSES
    from synthgap.train.checkpoint import METADATA

    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")  # never loaded by a dry run: the classes are in the metadata
    (folder / METADATA).write_text(json.dumps({"classes": list(CIFAR10_CLASSES)}))
    experiments = [{"kind": "distillation", "teacher": {"checkpoint": str(folder)}}]
    api.dry_run(tiny_raw(cifake_root, experiments), out=tmp_path / "out")
    assert dict(walks) == {("cifake:synthetic", "train"): 1, ("cifake:real", "test"): 1}
