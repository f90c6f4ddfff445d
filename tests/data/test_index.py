"""Class order across sides: one index relabelled to another's class order, and the errors when sets differ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthgap.data.index import LabelledIndex, align_classes, check_same_class_set, class_positions
from synthgap.data.sources import open_source
from synthgap.errors import SynthgapError


def make_index(classes: tuple[str, ...], labels: list[int], name: str = "x") -> LabelledIndex:
    paths = tuple(Path(f"/{name}/{classes[label]}/{i}.png") for i, label in enumerate(labels))
    return LabelledIndex.of_files(name, Path("/"), "folder", classes, paths, np.array(labels, dtype=np.int64))


def test_reordered_relabels_every_image_by_class_name():
    index = make_index(("oat milk", "apple", "pear"), [0, 1, 2, 2, 0])
    moved = index.reordered(("apple", "oat milk", "pear"))
    assert moved.classes == ("apple", "oat milk", "pear")
    assert moved.paths == index.paths
    names_before = [index.classes[i] for i in index.labels]
    assert [moved.classes[i] for i in moved.labels] == names_before
    assert moved.counts() == {"apple": 1, "oat milk": 2, "pear": 2}
    assert index.reordered(index.classes) is index


def test_reordered_refuses_another_class_set():
    index = make_index(("a", "b"), [0, 1])
    with pytest.raises(SynthgapError, match=r"only in the first: \['b'\]; only in the second: \['c'\]"):
        index.reordered(("a", "c"))
    with pytest.raises(SynthgapError, match="more than once"):
        index.reordered(("a", "b", "b"))


def test_align_classes_brings_all_to_the_first_order():
    first = make_index(("b", "a", "c"), [0, 1, 2], "first")
    second = make_index(("a", "b", "c"), [0, 0, 1, 2], "second")
    aligned = align_classes([first, second])
    assert aligned[0] is first
    assert aligned[1].classes == ("b", "a", "c")
    assert aligned[1].labels.tolist() == [1, 1, 0, 2]
    with pytest.raises(SynthgapError, match=r"first and third.*only in the second: \['d'\]"):
        align_classes([first, second, make_index(("a", "b", "d"), [0], "third")])


def test_class_positions_maps_old_labels_to_new_ones():
    assert class_positions(("x", "y", "z"), ("z", "x", "y")).tolist() == [1, 2, 0]


def test_check_same_class_set_ignores_order_only():
    check_same_class_set(("a", "b"), ("b", "a"))
    with pytest.raises(SynthgapError, match="different classes"):
        check_same_class_set(("a", "b"), ("a",))


def test_open_source_with_classes_returns_that_order(image_folder):
    index = open_source(f"folder:{image_folder}", classes=("zebra", "ant", "moth"))
    assert index.classes == ("zebra", "ant", "moth")
    assert index.counts() == {"zebra": 2, "ant": 3, "moth": 1}
    with pytest.raises(SynthgapError, match="only in the second"):
        open_source(f"folder:{image_folder}", classes=("zebra", "ant", "beetle"))
