from __future__ import annotations

import re

import numpy as np
import pytest

from synthgap.data.describe import describe
from synthgap.data.index import check_same_classes
from synthgap.data.sources import CIFAR10_CLASSES, DATA_ROOT_ENV, DataRef, open_source
from synthgap.errors import SynthgapError

CIFAKE_NUMBERS = (1, 2, 10)  # as written by the cifake_root fixture (tests/conftest.py)


def cifake_name(number: int, label: int) -> str:
    return f"{number}.jpg" if label == 0 else f"{number} ({label + 1}).jpg"


# --- cifake ---------------------------------------------------------------------------------------------------


def test_cifake_labels_and_numeric_sorted_order(cifake_root):
    index = open_source("cifake:real", "train", cifake_root)
    assert index.classes == CIFAR10_CLASSES
    assert index.labels.dtype == np.int64
    np.testing.assert_array_equal(index.labels, np.repeat(np.arange(10), len(CIFAKE_NUMBERS)))
    expected = [cifake_name(n, label) for label in range(10) for n in CIFAKE_NUMBERS]
    assert [p.name for p in index.paths] == expected
    assert index.paths[0].name == "1.jpg" and index.labels[0] == 0  # `<n>.jpg` is airplane
    assert index.paths[3 * 4].name == "1 (5).jpg" and index.labels[3 * 4] == 4  # `<n> (k).jpg` is class k-1


@pytest.mark.parametrize(
    "side, split, folder",
    [("real", "train", "train/REAL"), ("synthetic", "train", "train/FAKE"), ("synthetic", "test", "test/FAKE")],
)
def test_cifake_side_and_split_pick_folder(cifake_root, side, split, folder):
    index = open_source(f"cifake:{side}", split, cifake_root)
    expected = cifake_root / "cifake" / folder
    assert len(index) == 30
    assert all(p.parent == expected for p in index.paths)


@pytest.mark.parametrize("name", ["foo.jpg", "3 (11).jpg", "3 (0).jpg", "3.png", "3(2).jpg"])
def test_cifake_unexpected_file_name_is_named(cifake_root, write_jpeg, name):
    write_jpeg(cifake_root / "cifake" / "train" / "REAL" / name)
    with pytest.raises(SynthgapError, match=re.escape(name)):
        open_source("cifake:real", "train", cifake_root)


@pytest.mark.parametrize("how", ["missing_dir", "no_root"])
def test_cifake_missing_says_how_to_get_it(tmp_path, monkeypatch, how):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    root = tmp_path / "nowhere" if how == "missing_dir" else None
    with pytest.raises(SynthgapError) as info:
        open_source("cifake:real", "train", root)
    message = str(info.value)
    assert "--data-root" in message and "SYNTHGAP_DATA_ROOT" in message


def test_cifake_data_root_from_environment(cifake_root, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(cifake_root))
    index = open_source("cifake:synthetic", "test")
    assert len(index) == 30
    assert index.paths[0].parent == cifake_root / "cifake" / "test" / "FAKE"


def test_cifake_empty_class_is_named(cifake_root):
    folder = cifake_root / "cifake" / "train" / "REAL"
    for n in CIFAKE_NUMBERS:
        (folder / cifake_name(n, 3)).unlink()
    with pytest.raises(SynthgapError, match="cat"):
        open_source("cifake:real", "train", cifake_root)


# --- folder ---------------------------------------------------------------------------------------------------


def test_folder_sorted_classes_labels_and_nested_files(image_folder):
    index = open_source(f"folder:{image_folder}")
    assert index.classes == ("ant", "moth", "zebra")
    np.testing.assert_array_equal(index.labels, [0, 0, 0, 1, 2, 2])
    names = [p.relative_to(image_folder).as_posix() for p in index.paths]
    assert names == ["ant/a0.png", "ant/a1.png", "ant/sub/a2.png", "moth/m0.png", "zebra/z0.png", "zebra/z1.png"]


def test_folder_empty_class_is_named(image_folder):
    (image_folder / "beetle").mkdir()
    with pytest.raises(SynthgapError, match="beetle"):
        open_source(f"folder:{image_folder}")


def test_folder_without_class_folders(tmp_path, write_jpeg):
    write_jpeg(tmp_path / "loose.jpg")
    with pytest.raises(SynthgapError, match="no class folders"):
        open_source(f"folder:{tmp_path}")


@pytest.mark.parametrize("text, message", [("nocolon", "bad data reference"), ("bogus:x", "unknown data source")])
def test_dataref_parse_errors(text, message):
    with pytest.raises(SynthgapError, match=message):
        DataRef.parse(text)


# --- check_same_classes ---------------------------------------------------------------------------------------


def test_check_same_classes_identical_passes():
    check_same_classes(("a", "b"), ("a", "b"))


def test_check_same_classes_names_differences():
    with pytest.raises(SynthgapError) as info:
        check_same_classes(("a", "b", "c"), ("a", "c", "d"))
    message = str(info.value)
    assert "only in the first: ['b']" in message and "only in the second: ['d']" in message


def test_check_same_classes_rejects_other_order_and_says_how_to_align():
    with pytest.raises(SynthgapError, match="different order.*reordered"):
        check_same_classes(("a", "b"), ("b", "a"))


# --- describe -------------------------------------------------------------------------------------------------


def test_describe_cifake(cifake_root):
    text = describe(cifake_root)
    assert "CIFAKE" in text
    assert "32x32" in text
    assert re.search(r"^\s+airplane\s+3$", text, re.M) and re.search(r"^\s+truck\s+3$", text, re.M)
    assert text.count(": 30 images, 10 classes") == 4  # train/test × real/synthetic


def test_describe_image_folder(image_folder):
    text = describe(image_folder)
    assert "class folders" in text
    for name, count in (("ant", 3), ("moth", 1), ("zebra", 2)):
        assert re.search(rf"^\s+{name}\s+{count}$", text, re.M)
    assert "min 1, median 2, max 3" in text and "imbalanced" not in text  # a ratio of 3 is not flagged


def test_without_a_data_root_the_error_says_how_to_get_cifake(monkeypatch):
    from synthgap.data.sources import resolve_data_root

    monkeypatch.delenv("SYNTHGAP_DATA_ROOT", raising=False)
    with pytest.raises(SynthgapError) as error:
        resolve_data_root(None)
    message = str(error.value)
    assert message.startswith("no data root: pass --data-root DIR or set SYNTHGAP_DATA_ROOT=DIR")
    assert "on Kaggle" in message and "DIR/cifake/{train,test}/{REAL,FAKE}/*.jpg" in message
