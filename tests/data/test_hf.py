"""`hf:` sources: datasets built locally (save_to_disk, parquet, imagefolder) read as labelled indexes and decoded
from their Arrow rows into the usual cache, without writing image files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from synthgap.data.cache import cache_key, load_images
from synthgap.data.decode import decode_image
from synthgap.data.describe import describe
from synthgap.data.sources import open_source
from synthgap.errors import BadImageError, SynthgapError

CLASSES = ["cat", "dog", "owl"]


def _images(count: int, seed: int = 0) -> list[Image.Image]:
    """RGB, grayscale and RGBA images of a few sizes: what datasets on the hub hold."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        size = (20 + 4 * (i % 3), 18 + 2 * (i % 2))
        pixels = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
        mode = ("RGB", "L", "RGBA")[i % 3]
        images.append(Image.fromarray(pixels, "RGBA").convert(mode))
    return images


def _class_label_dataset(count: int = 9, seed: int = 0) -> datasets.Dataset:
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    labels = [i % 3 for i in range(count)]
    return datasets.Dataset.from_dict({"img": _images(count, seed), "label": labels}, features=features)


def _expected(dataset: datasets.Dataset, row: int, resolution: int) -> np.ndarray:
    """What decoding the row's image gives when it is written out as a PNG file first."""
    image = dataset[row]["img"]
    return decode_image_from(image, resolution)


def decode_image_from(image: Image.Image, resolution: int) -> np.ndarray:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return decode_image(buffer, resolution, "expected")


def test_a_saved_dataset_dict_is_indexed_and_decoded_from_its_rows(tmp_path):
    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": _class_label_dataset(9), "test": _class_label_dataset(6, seed=1)}).save_to_disk(
        str(folder)
    )
    train = open_source(f"hf:{folder}", "train")
    test = open_source(f"hf:{folder}", "test")
    assert train.classes == tuple(CLASSES) and train.name == f"hf:{folder}[train]" and train.layout == "hf"
    assert train.labels.tolist() == [0, 1, 2] * 3 and len(test) == 6
    decoded = load_images(train, 16, progress=False, workers=2)
    reference = datasets.load_from_disk(str(folder))["train"]
    for row in (0, 1, 2, 8):  # RGB, L and RGBA rows
        np.testing.assert_array_equal(decoded.images[row].numpy(), _expected(reference, row, 16))
    assert not list(folder.rglob("*.png")) and not list(tmp_path.rglob("*.jpg"))  # nothing written as files
    again = load_images(train, 16, progress=False)
    assert again.key == decoded.key


def test_parquet_files_with_string_labels_and_a_missing_test_split(tmp_path):
    folder = tmp_path / "parquet"
    folder.mkdir()
    names = ["zebra", "ant", "moth", "ant", "zebra", "moth"]
    features = datasets.Features({"picture": datasets.Image(), "species": datasets.Value("string")})
    dataset = datasets.Dataset.from_dict({"picture": _images(6), "species": names}, features=features)
    dataset.to_parquet(str(folder / "train.parquet"))
    index = open_source(f"hf:{folder}", "train")
    assert index.classes == ("ant", "moth", "zebra")  # sorted distinct strings
    assert [index.classes[label] for label in index.labels] == names
    single = open_source(f"hf:{folder / 'train.parquet'}", "train")
    assert single.classes == index.classes and len(single) == 6
    with pytest.raises(SynthgapError, match=r"no 'test' or 'validation' split .*its splits: train.*test_split=NAME"):
        open_source(f"hf:{folder}", "test")
    with pytest.raises(SynthgapError, match=r"has no split 'val'; its splits: train"):
        open_source(f"hf:{folder}?test_split=val", "test")
    other = open_source(f"hf:{folder}?test_split=train", "test")  # a named split serves the test role
    assert len(other) == 6


def test_an_imagefolder_with_a_metadata_file_reads_its_files_inside_the_folder(tmp_path):
    folder = tmp_path / "imagefolder"
    (folder / "train").mkdir(parents=True)
    rows = []
    for i, image in enumerate(_images(6)):
        image.convert("RGB").save(folder / "train" / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "kind": CLASSES[i % 3]})
    (folder / "train" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    index = open_source(f"hf:{folder}?label=kind", "train")
    assert index.classes == tuple(CLASSES) and len(index) == 6
    decoded = load_images(index, 12, progress=False)
    np.testing.assert_array_equal(decoded.images[3].numpy(), decode_image(folder / "train" / "3.png", 12))


def test_an_image_column_of_file_paths_stays_inside_the_dataset_folder(tmp_path):
    """A dataset whose image column holds file paths (what load_dataset keeps for a large image folder): the files
    are read where they are, must lie inside the dataset's folder, and their size and time are part of the key."""
    from synthgap.data.hf import split_index

    folder = tmp_path / "paths"
    (folder / "files").mkdir(parents=True)
    paths = []
    for i, image in enumerate(_images(4)):
        paths.append(str(folder / "files" / f"{i}.png"))
        image.convert("RGB").save(paths[-1])
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    dataset = datasets.Dataset.from_dict({"image": paths, "label": [0, 1, 0, 1]}, features=features)
    assert dataset.data.table.column("image").to_pylist()[0]["bytes"] is None  # the rows hold paths
    index = split_index("paths", {"train": dataset}, "train", image=None, label=None, folder=folder)
    decoded = load_images(index, 12, progress=False)
    np.testing.assert_array_equal(decoded.images[2].numpy(), decode_image(Path(paths[2]), 12))
    key = cache_key(index, 12)
    os.utime(paths[1], ns=(1, 1))  # touched: looked at again, the same bytes
    assert cache_key(index, 12) == key
    image = _images(4, seed=9)[1].convert("RGB")
    image.save(paths[1])  # an image file changed: another key
    assert cache_key(index, 12) != key
    elsewhere = split_index("paths", {"train": dataset}, "train", image=None, label=None, folder=folder / "files" / "x")
    with pytest.raises(SynthgapError, match=r"row 0 names an image file outside the dataset's folder"):
        load_images(elsewhere, 12, progress=False)
    hub = split_index("paths", {"train": dataset}, "train", image=None, label=None, folder=None)
    with pytest.raises(SynthgapError, match=r"names an image file .* instead of holding its bytes"):
        cache_key(hub, 12)


def test_a_changed_dataset_is_another_identity(tmp_path):
    folder = tmp_path / "saved"
    _class_label_dataset(6).save_to_disk(str(folder))
    before = cache_key(open_source(f"hf:{folder}", "train"), 16)
    assert cache_key(open_source(f"hf:{folder}", "train"), 16) == before
    _class_label_dataset(6, seed=5).save_to_disk(str(tmp_path / "changed"))
    assert cache_key(open_source(f"hf:{tmp_path / 'changed'}", "train"), 16) != before
    _class_label_dataset(6, seed=5).save_to_disk(str(folder))  # saved again in place: read again, another key
    assert cache_key(open_source(f"hf:{folder}", "train"), 16) != before
    _class_label_dataset(6).save_to_disk(str(tmp_path / "again"))  # the first images saved elsewhere: the same key
    assert cache_key(open_source(f"hf:{tmp_path / 'again'}", "train"), 16) == before


def test_undecodable_rows_are_named_and_skipped_with_skip_bad(tmp_path):
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    good = _images(4)
    rows = [good[0], {"bytes": b"not an image", "path": None}, good[1], good[2]]
    datasets.Dataset.from_dict({"img": rows, "label": [0, 1, 1, 0]}, features=features).save_to_disk(
        str(tmp_path / "bad")
    )
    index = open_source(f"hf:{tmp_path / 'bad'}", "train")
    with pytest.raises(BadImageError, match=r"row 1: cannot identify image file its bytes .*--skip-bad"):
        load_images(index, 12, progress=False)
    decoded = load_images(index, 12, progress=False, skip_bad=True)
    assert decoded.skipped == [f"hf:{tmp_path / 'bad'}[train] row 1"] and decoded.labels.tolist() == [0, 1, 0]


def test_ambiguous_or_unusable_columns_are_one_error_each(tmp_path):
    images = _images(4)
    two_images = datasets.Dataset.from_dict(
        {"a": images, "b": images, "label": ["x", "y", "x", "y"]},
        features=datasets.Features({"a": datasets.Image(), "b": datasets.Image(), "label": datasets.Value("string")}),
    )
    two_images.save_to_disk(str(tmp_path / "two"))
    with pytest.raises(SynthgapError, match=r"several image columns \(a, b\); choose one with \?image=NAME"):
        open_source(f"hf:{tmp_path / 'two'}", "train")
    assert len(open_source(f"hf:{tmp_path / 'two'}?image=b", "train")) == 4
    floats = datasets.Dataset.from_dict(
        {"img": images, "score": [0.1, 0.2, 0.3, 0.4]},
        features=datasets.Features({"img": datasets.Image(), "score": datasets.Value("float32")}),
    )
    floats.save_to_disk(str(tmp_path / "floats"))
    with pytest.raises(SynthgapError, match=r"no ClassLabel or string column \(its columns: img, score\)"):
        open_source(f"hf:{tmp_path / 'floats'}", "train")
    with pytest.raises(SynthgapError, match=r"column 'score' is .*not a class label or a string"):
        open_source(f"hf:{tmp_path / 'floats'}?label=score", "train")
    with pytest.raises(SynthgapError, match=r"has no column 'pixels'"):
        open_source(f"hf:{tmp_path / 'floats'}?image=pixels", "train")


def test_a_hub_id_missing_offline_says_where_it_looked_and_how_to_fetch_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(SynthgapError) as error:
        open_source("hf:nobody/no-such-dataset", "train")
    message = str(error.value)
    assert "cannot load dataset 'nobody/no-such-dataset'" in message and "offline: no download tried" in message
    assert "hf download nobody/no-such-dataset --repo-type dataset" in message and "\n" not in message


def test_data_describe_shows_splits_columns_and_class_counts(tmp_path):
    folder = tmp_path / "saved"
    imbalanced = datasets.Dataset.from_dict(
        {"img": _images(14), "label": [0] * 12 + [1, 1]},
        features=datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["big", "small"])}),
    )
    datasets.DatasetDict({"train": imbalanced, "validation": _class_label_dataset(3)}).save_to_disk(str(folder))
    text = describe(f"hf:{folder}")
    assert "splits: train (14 rows), validation (3 rows)" in text
    assert "image column: img; label column: label (ClassLabel)" in text
    assert f"hf:{folder}[train]: 14 images, 2 classes" in text and "imbalanced: largest class 12" in text
    assert "modes: " in text and f"hf:{folder}[validation]: 3 images, 3 classes" in text


def test_a_baseline_and_a_two_n_sweep_run_on_hf_sides(tmp_path):
    """Real and synthetic sides given as hf: datasets (one saved to disk, one as parquet) run like folders, and a
    rerun finds every run done."""
    from synthgap.experiments.runner import run_experiment
    from tests.specs import tiny_spec

    real = tmp_path / "real"
    datasets.DatasetDict({"train": _class_label_dataset(12), "test": _class_label_dataset(6, seed=2)}).save_to_disk(
        str(real)
    )
    synthetic = tmp_path / "synthetic"
    synthetic.mkdir()
    names = datasets.Dataset.from_dict(
        {"image": _images(12, seed=3), "label": [CLASSES[i % 3] for i in range(12)]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}),
    )
    names.to_parquet(str(synthetic / "train.parquet"))
    data = {"real": f"hf:{real}", "synthetic": f"hf:{synthetic}", "test": f"hf:{real}", "resolution": 16}
    experiments = [{"kind": "baseline"}, {"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": [4, 16]}]
    spec = tiny_spec(None, experiments, name="hf-sides", data=data)
    records = run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "models", progress=False)
    assert sorted(r.run for r in records) == [
        "baseline-real-s0",
        "baseline-synthetic-s0",
        "transfer-synthetic_to_real-n04-s0",
        "transfer-synthetic_to_real-n16-s0",
    ]
    assert all(0 <= r.top1 <= 100 for r in records)
    again = run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "models", progress=False)
    assert [r.run for r in again] == [r.run for r in records]


def test_files_replaced_with_the_same_time_or_added_deep_down_are_read_again(tmp_path):
    """A parquet file replaced by another with the same modification time (cp -p, rsync -a), and an image added to a
    nested imagefolder, are other data: read again, under another key, in the same process too."""
    folder = tmp_path / "parquet"
    folder.mkdir()
    target = folder / "train.parquet"
    _class_label_dataset(6).to_parquet(str(target))
    stamp = target.stat().st_mtime_ns
    first = open_source(f"hf:{folder}", "train")
    other = tmp_path / "other.parquet"
    _class_label_dataset(9, seed=4).to_parquet(str(other))
    os.replace(other, target)
    os.utime(target, ns=(stamp, stamp))  # the same modification time as the file it replaced
    second = open_source(f"hf:{folder}", "train")
    assert len(first) == 6 and len(second) == 9 and cache_key(second, 16) != cache_key(first, 16)

    nested = tmp_path / "imagefolder"
    for i, image in enumerate(_images(4)):
        (nested / "train" / CLASSES[i % 2]).mkdir(parents=True, exist_ok=True)
        image.convert("RGB").save(nested / "train" / CLASSES[i % 2] / f"{i}.png")
    assert len(open_source(f"hf:{nested}", "train")) == 4
    _images(1, seed=9)[0].convert("RGB").save(nested / "train" / "cat" / "new.png")
    assert len(open_source(f"hf:{nested}", "train")) == 5


def test_unusable_columns_and_options_are_one_line_each(tmp_path):
    images = _images(4)
    mixed = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"img": images, "label": ["a", "b", "a", "b"], "note": list("wxyz")}),
            "test": _class_label_dataset(3),
        }
    )
    mixed["train"] = mixed["train"].cast_column("img", datasets.Image())
    mixed.save_to_disk(str(tmp_path / "mixed"))
    with pytest.raises(SynthgapError, match=r"column 'note' is .*not images; name the image column with \?image="):
        open_source(f"hf:{tmp_path / 'mixed'}?image=note", "train")
    train = open_source(f"hf:{tmp_path / 'mixed'}?label=label", "train")  # strings here, a ClassLabel in test
    assert train.classes == ("a", "b")
    with pytest.raises(SynthgapError, match=r"is a save_to_disk folder, which has no configurations; drop \?config=x"):
        open_source(f"hf:{tmp_path / 'mixed'}?config=x", "train")


def test_describe_reports_an_unusable_split_and_describes_the_rest(tmp_path):
    unlabelled = datasets.Dataset.from_dict(
        {"img": _images(3), "label": [-1, -1, -1]},
        features=datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)}),
    )
    datasets.DatasetDict({"train": _class_label_dataset(6), "test": unlabelled}).save_to_disk(str(tmp_path / "s"))
    text = describe(f"hf:{tmp_path / 's'}")
    assert f"hf:{tmp_path / 's'}[train]: 6 images, 3 classes" in text
    assert "split test: not usable as a side: " in text and "3 of 3 rows have no label" in text


def test_rows_held_in_memory_reach_a_decoding_worker_as_their_own_rows_only(tmp_path):
    import pickle

    from synthgap.data.hf import split_index

    dataset = _class_label_dataset(30)  # from_dict: held in memory, not memory-mapped
    index = split_index("mem", {"train": dataset}, "train", image=None, label=None, folder=None)
    chunk = index.items.select([3, 4])
    whole, part = len(pickle.dumps(index.items)), len(pickle.dumps(chunk))
    assert part < whole / 5
    again = pickle.loads(pickle.dumps(chunk))
    assert (
        [name for name, _ in again.sources()]
        == [chunk.name(0), chunk.name(1)]
        == ["hf:mem[train] row 3", "hf:mem[train] row 4"]
    )
    assert [s.read() for _, s in again.sources()] == [s.read() for _, s in chunk.sources()]


def _cast_labels(labels: list, names: list[str]) -> datasets.Dataset:
    """A ClassLabel column holding `labels` as they are: `from_dict` would refuse an out-of-range value, a cast from
    ints does not (what a dataset written by another tool can hold)."""
    ints = datasets.Dataset.from_dict(
        {"img": _images(len(labels)), "label": labels},
        features=datasets.Features({"img": datasets.Image(), "label": datasets.Value("int64")}),
    )
    return ints.cast(datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=names)}))


def test_a_class_label_value_out_of_range_is_refused_naming_its_row(tmp_path):
    folder = tmp_path / "out-of-range"
    datasets.DatasetDict({"train": _cast_labels([0, 1, 2, 3, 7, 1], ["a", "b", "c", "d"])}).save_to_disk(str(folder))
    expected = rf"hf:{folder}\[train\] row 4: label 7 is out of range for column 'label', a ClassLabel of 4 names"
    with pytest.raises(SynthgapError, match=expected) as caught:
        open_source(f"hf:{folder}", "train")
    assert "\n" not in str(caught.value)
    with pytest.raises(SynthgapError, match=expected):  # describe says so too, rather than counting 6 images
        describe(f"hf:{folder}")


def test_a_null_label_is_one_error_without_numpy_warnings(tmp_path):
    import warnings

    folder = tmp_path / "nulls"
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    data = datasets.Dataset.from_dict({"img": _images(4), "label": [0, None, 2, 1]}, features=features)
    datasets.DatasetDict({"train": data}).save_to_disk(str(folder))
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SynthgapError, match=r"1 of 4 rows have no"):
        warnings.simplefilter("always")
        open_source(f"hf:{folder}", "train")
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]


def test_an_unfinished_export_says_so_instead_of_reading_its_settings(tmp_path):
    from synthgap.data import hf
    from synthgap.generate import export
    from tests.data.test_generated import write_set

    assert (hf.EXPORT_SETTINGS, hf.EXPORT_DATA) == (export.EXPORT, export.SHARDS)  # the folder export.py writes
    write_set(tmp_path / "gen")
    out = tmp_path / "export"
    export.export_generated(export.ExportConfig(tmp_path / "gen", out), progress=False)
    os.replace(out / "data", out / ".data.partial")  # the state a kill before the end leaves
    (out / "README.md").unlink()
    with pytest.raises(SynthgapError) as caught:
        open_source(f"hf:{out}", "train")
    assert str(caught.value) == (
        f"hf:{out} is an unfinished synthgap export (no data/ yet): run `synthgap export` again to finish it"
    )
    os.replace(out / ".data.partial", out / "data")  # the shards in place, the card not yet written: readable
    assert len(open_source(f"hf:{out}", "train")) == 4


def test_describe_refuses_an_unknown_split_and_reads_only_the_named_ones(tmp_path):
    folder = tmp_path / "saved"
    splits = {"train": _class_label_dataset(6), "test": _class_label_dataset(3), "extra": _class_label_dataset(9)}
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    with pytest.raises(SynthgapError, match=r"has no split 'nope'; its splits: train, test, extra"):
        describe(f"hf:{folder}?split=nope")
    with pytest.raises(SynthgapError, match=r"has no split 'nope'; its splits: train, test, extra"):
        describe(f"hf:{folder}?test_split=nope")
    text = describe(f"hf:{folder}?split=extra&test_split=train")
    assert "splits: train (6 rows), test (3 rows), extra (9 rows)" in text  # every split is listed
    assert f"hf:{folder}[extra]: 9 images" in text and f"hf:{folder}[train]: 6 images" in text
    assert f"hf:{folder}[test]:" not in text  # the sides read extra and train
