"""The imagenet100 source over a tiny fake ImageNet tree (100 CMC wnid folders under train/ and val/)."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthgap.data import SOURCES, open_source
from synthgap.data.imagenet100 import check_imagenet100_layout, load_imagenet100_classes, open_imagenet100
from synthgap.errors import SynthgapError

EXTRA_CLASS = "n99999999"  # not an imagenet100 class: must be ignored
TRAIN_PER_CLASS = 2
VAL_PER_CLASS = 1
CMC_FIRST = ("n02869837", "n01749939", "n02488291")  # the first lines of CMC's imagenet100.txt
CMC_LAST = "n02090622"


def _encoded(fmt: str, value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value, 255 - value, 0)).save(buffer, format=fmt)
    return buffer.getvalue()


PNG = _encoded("PNG", 10)
JPEG = _encoded("JPEG", 200)


def wnids_cmc_order() -> list[str]:
    return [entry["wnid"] for entry in load_imagenet100_classes()]


def write_tree(root: Path, counts: dict[str, int], classes: list[str]) -> Path:
    """<root>/<split>/<wnid>/img_<i>.{JPEG,png} with counts[split] files per class (written unsorted on purpose)."""
    for split, count in counts.items():
        for wnid in reversed(classes):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                if i % 2:
                    (folder / f"img_{i}.png").write_bytes(PNG)
                else:
                    (folder / f"{wnid}_{i}.JPEG").write_bytes(JPEG)
    return root


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory) -> Path:
    root = write_tree(
        tmp_path_factory.mktemp("imagenet") / "imagenet",
        {"train": TRAIN_PER_CLASS, "val": VAL_PER_CLASS},
        wnids_cmc_order() + [EXTRA_CLASS],
    )
    (root / "train" / wnids_cmc_order()[0] / "notes.txt").write_text("not an image")  # ignored: not an image
    (root / "train" / "LOC_train_solution.csv").write_text("ignored")  # a file beside the class folders
    return root


# --- the shipped class list --------------------------------------------------------------------------------------


def test_class_list_has_100_unique_named_wnids_in_cmc_order():
    classes = load_imagenet100_classes()
    wnids = [entry["wnid"] for entry in classes]
    assert len(classes) == 100
    assert len(set(wnids)) == 100
    assert all(re.fullmatch(r"n\d{8}", wnid) for wnid in wnids)
    assert tuple(wnids[:3]) == CMC_FIRST and wnids[-1] == CMC_LAST
    assert wnids != sorted(wnids)  # the file keeps CMC's order; the index sorts
    for entry in classes:
        assert set(entry) == {"wnid", "name", "synonyms"}
        assert entry["name"].strip() and entry["name"] == entry["synonyms"][0]
        assert all(s.strip() for s in entry["synonyms"])
    by_wnid = {entry["wnid"]: entry for entry in classes}
    assert by_wnid["n02869837"]["synonyms"] == ["bonnet", "poke bonnet"]
    assert by_wnid["n02123045"]["name"] == "tabby"
    assert by_wnid["n02090622"]["name"] == "borzoi"


# --- indexing ----------------------------------------------------------------------------------------------------


def test_registered_as_imagenet100():
    assert SOURCES.get("imagenet100") is open_imagenet100


def test_train_index_sorted_wnids_labels_from_folders(imagenet_root):
    index = open_source("imagenet100:" + str(imagenet_root), "train")
    assert index.classes == tuple(sorted(wnids_cmc_order()))
    assert len(index.classes) == 100
    assert EXTRA_CLASS not in index.classes
    assert index.layout == "imagenet100"
    assert index.root == imagenet_root / "train"
    assert len(index) == 100 * TRAIN_PER_CLASS
    assert index.labels.dtype == np.int64
    assert all(index.classes[label] == path.parent.name for path, label in zip(index.paths, index.labels, strict=True))
    assert all(path.parent.parent == imagenet_root / "train" for path in index.paths)  # in place, not copied
    assert all(path.suffix in (".JPEG", ".png") for path in index.paths)
    np.testing.assert_array_equal(index.labels, np.repeat(np.arange(100), TRAIN_PER_CLASS))
    assert list(index.paths) == sorted(index.paths)
    assert set(index.counts().values()) == {TRAIN_PER_CLASS}


def test_test_split_reads_val(imagenet_root):
    index = open_source("imagenet100:" + str(imagenet_root), "test")
    assert index.root == imagenet_root / "val"
    assert len(index) == 100 * VAL_PER_CLASS
    assert all(path.parent.parent == imagenet_root / "val" for path in index.paths)
    assert index.classes == tuple(sorted(wnids_cmc_order()))
    assert all(index.classes[label] == path.parent.name for path, label in zip(index.paths, index.labels, strict=True))


def test_check_layout_summary_counts(imagenet_root):
    summary = check_imagenet100_layout(imagenet_root)
    assert summary == (
        f"imagenet100 at {imagenet_root}: train 100 classes / {100 * TRAIN_PER_CLASS} images, "
        f"val 100 classes / {100 * VAL_PER_CLASS} images"
    )


# --- errors ------------------------------------------------------------------------------------------------------


def test_missing_root(tmp_path):
    with pytest.raises(SynthgapError, match="ImageNet root not found: .*nowhere"):
        open_source("imagenet100:" + str(tmp_path / "nowhere"), "train")
    with pytest.raises(SynthgapError, match="ImageNet root not found"):
        check_imagenet100_layout(tmp_path / "nowhere")


def test_missing_split_folder(tmp_path):
    root = tmp_path / "imagenet"
    (root / "train").mkdir(parents=True)
    with pytest.raises(SynthgapError, match=r"ImageNet val/ folder missing: .*imagenet[/\\]val"):
        open_source("imagenet100:" + str(root), "test")
    with pytest.raises(SynthgapError, match=r"ImageNet val/ folder missing"):
        check_imagenet100_layout(root)


def test_unknown_split(imagenet_root):
    with pytest.raises(SynthgapError, match="unknown imagenet100 split 'val'"):
        open_source("imagenet100:" + str(imagenet_root), "val")


@pytest.mark.parametrize("n_missing", [3, 7])
def test_missing_class_folders_named(tmp_path, n_missing):
    wnids = sorted(wnids_cmc_order())
    missing = wnids[10 : 10 + n_missing]
    for wnid in wnids + [EXTRA_CLASS]:
        if wnid not in missing:
            (tmp_path / "train" / wnid).mkdir(parents=True)
    with pytest.raises(SynthgapError) as caught:
        open_source("imagenet100:" + str(tmp_path), "train")
    message = str(caught.value)
    assert message.startswith(f"{n_missing} of the 100 imagenet100 class folders missing in {tmp_path / 'train'}: ")
    assert ", ".join(missing[:5]) in message
    assert "\n" not in message
    if n_missing > 5:
        assert missing[5] not in message and message.endswith(", ...")
    else:
        assert message.endswith(missing[-1])


def test_class_file_instead_of_folder_counts_as_missing(tmp_path):
    wnids = sorted(wnids_cmc_order())
    for wnid in wnids[1:]:
        (tmp_path / "val" / wnid).mkdir(parents=True)
    (tmp_path / "val" / wnids[0]).write_bytes(JPEG)
    with pytest.raises(SynthgapError, match=f"1 of the 100 imagenet100 class folders missing .*: {wnids[0]}$"):
        open_source("imagenet100:" + str(tmp_path), "test")


def test_empty_class_folder(tmp_path, imagenet_root):
    root = tmp_path / "imagenet"
    shutil.copytree(imagenet_root / "val", root / "val")
    empty = sorted(wnids_cmc_order())[42]
    for path in (root / "val" / empty).iterdir():
        path.unlink()
    (root / "val" / empty / "readme.txt").write_text("no images here")  # a non-image file does not count
    with pytest.raises(SynthgapError, match=f"imagenet100: no images in class folder .*val[/\\\\]{empty}$"):
        open_source("imagenet100:" + str(root), "test")


def test_link_loop_in_a_class_folder_is_skipped_with_a_warning(tmp_path, imagenet_root):
    root = tmp_path / "imagenet"
    shutil.copytree(imagenet_root / "val", root / "val")
    wnid = sorted(wnids_cmc_order())[7]
    (root / "val" / wnid / "again").symlink_to(root / "val" / wnid, target_is_directory=True)
    with pytest.warns(UserWarning, match="link loop"):
        index = open_source("imagenet100:" + str(root), "test")
    assert index.counts()[wnid] == VAL_PER_CLASS
