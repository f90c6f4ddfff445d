"""`folder:` sources on user-shaped trees: nested and symlinked class folders, split roots, class maps, generator
bookkeeping and hidden entries. Files are tiny PNG bytes: indexing never decodes them."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthgap.data.describe import describe
from synthgap.data.sources import GENERATOR_FOLDERS, DataRef, open_source
from synthgap.errors import SynthgapError
from synthgap.generate.classes import RESERVED_FOLDERS

ODD = "Crème brûlée v2.0 (x)"  # spaces, unicode, a dot and brackets in one class name


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


def write_images(folder: Path, count: int, prefix: str = "img") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{prefix}_{i:03d}.png").write_bytes(PNG)
    return folder


def link(path: Path, target: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=target.is_dir())
    return path


def write_store(store: Path, scale: int) -> dict[str, Path]:
    """Fine-grained folders kept outside the data root (reached only through links): 300 dogs, 16 cats at scale 1."""
    beagle = store / "beagle"
    write_images(beagle / "2019", 100 // scale)
    write_images(beagle / "2020" / "summer", 50 // scale)  # images at any depth
    poodle = write_images(store / "poodle", 150 // scale)
    tabby = write_images(store / "tabby", 10 // scale)
    siamese = write_images(store / "siamese", 6 // scale)
    link(beagle / "2020" / "back_up", beagle)  # a link loop: skipped with a warning, never followed forever
    return {"beagle": beagle, "poodle": poodle, "tabby": tabby, "siamese": siamese}


def write_split(split: Path, store: Path, scale: int) -> None:
    fine = write_store(store, scale)
    (store / "cats_home").mkdir()
    link(split / "dogs" / "beagle", fine["beagle"])  # a coarse class made of directory links
    link(split / "dogs" / "poodle", fine["poodle"])
    link(split / "cats", store / "cats_home")  # the class folder itself is a link
    link(split / "cats" / "tabby", fine["tabby"])
    for path in sorted(fine["siamese"].iterdir()):  # file links
        link(split / "cats" / "siamese" / path.name, path)
    write_images(split / ODD / "a" / "b", 20 // scale)
    write_images(split / "dogs" / ".thumbnails", 5)  # hidden: ignored
    (split / "dogs" / "notes.txt").write_text("not an image")


@pytest.fixture(scope="module")
def split_root(tmp_path_factory) -> Path:
    """<root>/{train,val}/ (no test/: the test split reads val/) with the class map beside it."""
    base = tmp_path_factory.mktemp("user_data")
    root = base / "root"
    write_split(root / "train", base / "store_train", scale=1)
    write_split(root / "val", base / "store_val", scale=2)
    (base / "map.csv").write_text(
        f"folder,class\ndogs,Dog\ncats/tabby,Cat\ncats/siamese/,Cat\n{ODD},{ODD}\n", encoding="utf-8"
    )
    return root


def test_nested_symlinked_split_root_with_class_map(split_root):
    ref = f"folder:{split_root}?class_map={split_root.parent / 'map.csv'}"
    with pytest.warns(UserWarning, match="back_up"):
        train = open_source(ref, "train")
    assert train.classes == ("Cat", ODD, "Dog")
    assert train.counts() == {"Cat": 16, ODD: 20, "Dog": 300}
    assert all(split_root / "train" in p.parents for p in train.paths)  # logical paths, inside the split
    assert len(set(train.paths)) == len(train)
    is_dog = [label == train.classes.index("Dog") for label in train.labels.tolist()]
    assert is_dog == ["beagle" in p.parts or "poodle" in p.parts for p in train.paths]
    with pytest.warns(UserWarning, match="back_up"):
        test = open_source(ref, "test")
    assert test.classes == train.classes
    assert test.counts() == {"Cat": 8, ODD: 10, "Dog": 150}
    assert all(split_root / "val" in p.parents for p in test.paths)


def test_without_a_class_map_each_top_folder_is_a_class(split_root):
    with pytest.warns(UserWarning, match="link loop"):
        index = open_source(f"folder:{split_root}", "train")
    assert index.classes == (ODD, "cats", "dogs")  # sorted by name, as ImageFolder does
    assert index.counts() == {ODD: 20, "cats": 16, "dogs": 300}
    np.testing.assert_array_equal(np.bincount(index.labels), [20, 16, 300])
    assert index.labels.tolist() == sorted(index.labels.tolist())


def test_describe_reports_split_layout_and_imbalance(split_root):
    with pytest.warns(UserWarning):
        text = describe(split_root, class_map=split_root.parent / "map.csv")
    assert "split root" in text and "train/" in text and "val/" in text
    assert "class map" in text
    assert "min 16, median 20, max 300" in text
    assert "imbalanced: largest class 300 images (Dog), smallest 16 (Cat); ratio 18.8" in text
    assert "min 8, median 10, max 150" in text


def test_plain_image_folder_reads_the_same_folder_for_both_splits(image_folder):
    train, test = open_source(f"folder:{image_folder}", "train"), open_source(f"folder:{image_folder}", "test")
    assert train.paths == test.paths and train.classes == test.classes == ("ant", "moth", "zebra")


def test_split_root_needs_a_test_or_val_folder(tmp_path):
    write_images(tmp_path / "train" / "a", 2)
    assert open_source(f"folder:{tmp_path}", "train").classes == ("a",)
    with pytest.raises(SynthgapError, match=r"no test/, val/ or validation/"):
        open_source(f"folder:{tmp_path}", "test")


def test_split_root_prefers_test_over_val(tmp_path):
    for split, count in (("train", 3), ("val", 2), ("test", 1)):
        write_images(tmp_path / split / "a", count)
    assert len(open_source(f"folder:{tmp_path}", "test")) == 1


def test_split_class_lists_must_agree(tmp_path):
    for name in ("apple", "pear"):
        write_images(tmp_path / "train" / name, 2)
    for name in ("apple", "plum"):
        write_images(tmp_path / "test" / name, 2)
    with pytest.raises(SynthgapError, match=r"only in train/: \['pear'\]; only in test/: \['plum'\]"):
        open_source(f"folder:{tmp_path}", "train")


def test_split_names_beside_classes_are_classes_with_a_warning(tmp_path):
    for name in ("train", "test", "bus"):
        write_images(tmp_path / name, 2)
    with pytest.warns(UserWarning, match="read as classes"):
        index = open_source(f"folder:{tmp_path}")
    assert index.classes == ("bus", "test", "train")


def test_generator_bookkeeping_and_hidden_entries_are_ignored(tmp_path):
    write_images(tmp_path / "apple", 2)
    write_images(tmp_path / "oat_milk", 3)
    write_images(tmp_path / "previews", 2)
    (tmp_path / "manifest.parts").mkdir()
    (tmp_path / "manifest.parts" / "0-of-1.jsonl").write_text("{}\n")
    write_images(tmp_path / ".cache", 2)
    write_images(tmp_path / "apple" / ".ipynb_checkpoints", 2)
    (tmp_path / "apple" / ".hidden.png").write_bytes(PNG)
    (tmp_path / "manifest.jsonl").write_text("{}\n")
    index = open_source(f"folder:{tmp_path}")
    assert index.counts() == {"apple": 2, "oat_milk": 3}
    assert GENERATOR_FOLDERS == RESERVED_FOLDERS  # the folders `synthgap generate` writes beside class folders
    (tmp_path / "manifest.jsonl").unlink()
    (tmp_path / "manifest.parts" / "0-of-1.jsonl").unlink()
    (tmp_path / "manifest.parts").rmdir()
    assert open_source(f"folder:{tmp_path}").classes == ("apple", "oat_milk", "previews")  # not generate output


def test_class_folder_linking_back_to_the_root_is_a_loop_not_a_recursion(tmp_path):
    write_images(tmp_path / "a", 2)
    write_images(tmp_path / "b", 1)
    link(tmp_path / "b" / "up", tmp_path)
    with pytest.warns(UserWarning, match="link loop"):
        assert open_source(f"folder:{tmp_path}").counts() == {"a": 2, "b": 1}


def test_broken_links_are_counted_in_a_warning(tmp_path):
    write_images(tmp_path / "a", 2)
    link(tmp_path / "a" / "gone.png", tmp_path / "nowhere.png")
    with pytest.warns(UserWarning, match="1 broken link"):
        assert len(open_source(f"folder:{tmp_path}")) == 2


# --- class maps -----------------------------------------------------------------------------------------------


@pytest.fixture
def fine_tree(tmp_path) -> Path:
    for name, count in (("beagle", 3), ("poodle", 2), ("tabby", 1)):
        write_images(tmp_path / "root" / name, count)
    write_images(tmp_path / "root" / "tabby" / "kitten", 1)
    return tmp_path / "root"


def write_map(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "map.csv"
    path.write_text("folder,class\n" + rows, encoding="utf-8")
    return path


def test_class_map_groups_fine_folders_and_longest_path_wins(tmp_path, fine_tree):
    path = write_map(tmp_path, "beagle,dog\npoodle,dog\ntabby,cat\ntabby/kitten,kitten\n")
    index = open_source(f"folder:{fine_tree}?class_map={path}")
    assert index.counts() == {"cat": 1, "dog": 5, "kitten": 1}
    assert index.name == f"folder:{fine_tree}?class_map={path}"


def test_class_map_can_map_single_files(tmp_path, fine_tree):
    path = write_map(tmp_path, "beagle,dog\npoodle,dog\ntabby,cat\ntabby/kitten/img_000.png,dog\n")
    assert open_source(f"folder:{fine_tree}?class_map={path}").counts() == {"cat": 1, "dog": 6}


def test_class_map_names_unmapped_folders(tmp_path, fine_tree):
    path = write_map(tmp_path, "beagle,dog\ntabby/kitten,cat\n")
    with pytest.raises(SynthgapError, match=r"does not map 3 images.*'poodle', 'tabby'"):
        open_source(f"folder:{fine_tree}?class_map={path}")


def test_class_map_warns_about_rows_that_match_nothing(tmp_path, fine_tree):
    path = write_map(tmp_path, "beagle,dog\npoodle,dog\ntabby,cat\nsphynx,cat\n")
    with pytest.warns(UserWarning, match="sphynx"):
        open_source(f"folder:{fine_tree}?class_map={path}")


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,label\nbeagle,dog\n", "header"),
        ("folder,class\nbeagle,dog\nbeagle/,cat\n", r"'beagle' more than once \(lines 2, 3\)"),
        ("folder,class\nbeagle,\n", "line 2: empty class"),
        ("folder,class\n../beagle,dog\n", r"line 2: .*inside the class folders"),
        ("folder,class\n/abs/beagle,dog\n", r"line 2: .*inside the class folders"),
        ("folder,class\n", "no rows"),
    ],
)
def test_bad_class_maps_are_clear_errors(tmp_path, fine_tree, text, message):
    path = tmp_path / "map.csv"
    path.write_text(text)
    with pytest.raises(SynthgapError, match=message):
        open_source(f"folder:{fine_tree}?class_map={path}")


def test_missing_class_map_is_named(tmp_path, fine_tree):
    with pytest.raises(SynthgapError, match="class map not found"):
        open_source(f"folder:{fine_tree}?class_map={tmp_path / 'nope.csv'}")


# --- references with options -----------------------------------------------------------------------------------


def test_dataref_options_round_trip_and_keep_plain_references():
    ref = DataRef.parse("folder:/data/root?class_map=/maps/coarse map.csv")
    assert (ref.argument, dict(ref.options)) == ("/data/root", {"class_map": "/maps/coarse map.csv"})
    assert str(ref) == "folder:/data/root?class_map=/maps/coarse map.csv"
    plain = DataRef.parse("folder:/data/what?")  # not options: part of the path, as before
    assert (plain.argument, plain.options) == ("/data/what?", ())
    assert str(DataRef.parse("cifake:real")) == "cifake:real"


@pytest.mark.parametrize(
    "text, message",
    [
        ("folder:/d?colour=red", re.escape("unknown option 'colour' for folder: sources; choose from: class_map")),
        ("cifake:real?class_map=m.csv", "takes no options"),
        ("folder:/d?class_map=a&class_map=b", "given twice"),
        ("folder:/d?class_map=", "has no value"),
    ],
)
def test_dataref_option_errors(text, message):
    with pytest.raises(SynthgapError, match=message):
        DataRef.parse(text)


def test_symlinked_class_folders_in_a_plain_root(tmp_path):
    store = write_images(tmp_path / "elsewhere" / "apples", 4)
    link(tmp_path / "root" / "apple", store)
    write_images(tmp_path / "root" / "pear", 2)
    index = open_source(f"folder:{tmp_path / 'root'}")
    assert index.counts() == {"apple": 4, "pear": 2}
    assert all(p.parent == tmp_path / "root" / "apple" for p in index.paths[:4])
    assert os.path.realpath(index.paths[0]).startswith(str(store.resolve()))
