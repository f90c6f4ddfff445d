"""Generated sets out: every output is an imagefolder dataset, and `synthgap export` writes parquet shards and a card
that read back, through `hf:`, as the same images and labels."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import datasets
import pytest
import torch

from synthgap.data.cache import load_images
from synthgap.data.sources import open_source
from synthgap.errors import SynthgapError
from synthgap.generate.export import ExportConfig, export_generated


def test_a_generated_set_loads_as_an_imagefolder_with_prompts_and_seeds(reference_set):
    loaded = datasets.load_dataset("imagefolder", data_dir=str(reference_set), split="train")
    manifest = [json.loads(line) for line in (reference_set / "manifest.jsonl").read_text().splitlines()]
    assert len(loaded) == len(manifest) == 30  # the previews are not read as data
    by_seed = {record["seed"]: record for record in manifest}
    for row in loaded.select(range(0, 30, 7)):
        record = by_seed[row["seed"]]
        assert row["label"] == record["class"] and row["prompt"] == record["prompt"]
        assert row["sha256"] == record["sha256"]


def test_export_round_trips_through_hf(reference_set, tmp_path):
    out = tmp_path / "export"
    result = export_generated(ExportConfig(reference_set, out, images_per_shard=12), progress=False)
    assert result.images == 30 and result.written == 3
    assert [s.name for s in result.shards] == [
        "train-00000-of-00003.parquet",
        "train-00001-of-00003.parquet",
        "train-00002-of-00003.parquet",
    ]
    generated = open_source(f"generated:{reference_set}", "train")
    exported = open_source(f"hf:{out}", "train")
    assert exported.classes == generated.classes  # the ClassLabel keeps the generation's class order
    assert exported.labels.tolist() == generated.labels.tolist()
    a, b = load_images(generated, 32, progress=False), load_images(exported, 32, progress=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    table = datasets.load_dataset(str(out), split="train")
    assert table.features["label"].names == list(generated.classes)
    assert {"prompt", "seed", "guidance", "steps", "template", "file_name"} <= set(table.column_names)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: other") and "path: data/train-*" in card
    assert f"- model: `{json.loads((reference_set / 'generate.json').read_text())['model']}`" in card
    assert "| airplane | airplane | 3 |" in card and "- steps: `2`" in card and "`a photo of a {name}`" in card


def test_an_export_resumes_and_refuses_other_settings_and_other_folders(reference_set, tmp_path):
    out = tmp_path / "export"
    config = ExportConfig(reference_set, out, images_per_shard=12)
    first = export_generated(config, progress=False)
    assert export_generated(config, progress=False).written == 0  # complete: nothing to redo
    middle = first.shards[1].read_bytes()
    first.shards[1].unlink()
    (out / "README.md").unlink()
    again = export_generated(config, progress=False)
    assert again.written == 1 and first.shards[1].read_bytes() == middle and (out / "README.md").exists()
    # an export killed before its end has its shards in staging: readers find no data rather than part of it
    os.replace(out / "data", out / ".data.partial")
    (out / ".data.partial" / first.shards[2].name).unlink()
    (out / "README.md").unlink()
    with pytest.raises(SynthgapError):
        open_source(f"hf:{out}", "train")
    assert export_generated(config, progress=False).written == 1
    assert len(open_source(f"hf:{out}", "train")) == 30 and not (out / ".data.partial").exists()
    with pytest.raises(SynthgapError, match=r"other settings \(images_per_shard: 12 → 20\)"):
        export_generated(ExportConfig(reference_set, out, images_per_shard=20), progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(SynthgapError, match=r"is not empty and holds no export"):
        export_generated(ExportConfig(reference_set, busy), progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(reference_set, copy)
    with pytest.raises(SynthgapError, match=r"lies inside the set it exports"):
        export_generated(ExportConfig(copy, copy / "export"), progress=False)
    with pytest.raises(SynthgapError, match=r"copy is not empty and holds no export"):
        export_generated(ExportConfig(reference_set, copy), progress=False)


def test_push_offline_is_one_clear_error(reference_set, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SynthgapError, match=r"cannot push to me/set: HF_HUB_OFFLINE is set"):
        export_generated(ExportConfig(reference_set, tmp_path / "export", push="me/set"), progress=False)
    assert (tmp_path / "export" / "README.md").exists()  # the export itself is done and kept


def test_the_export_and_describe_commands(reference_set, tmp_path, capsys):
    from tests.test_bad_inputs import only_line, synthgap

    code, out, err = synthgap(capsys, "export", reference_set, "--to", tmp_path / "export", "--quiet")
    assert code == 0, err
    assert f"exported 30 images in 1 parquet shard (1 written now) to {tmp_path / 'export'}" in out
    code, out, err = synthgap(capsys, "data", "describe", f"hf:{tmp_path / 'export'}")
    assert code == 0, err
    assert "splits: train (30 rows)" in out and "image column: image; label column: label (ClassLabel)" in out
    assert f"hf:{tmp_path / 'export'}[train]: 30 images, 10 classes" in out
    code, _, err = synthgap(capsys, "export", reference_set, "--to", tmp_path / "export", "--images-per-shard", "0")
    assert code == 2 and "--images-per-shard must be at least 1, got 0" in only_line(err)
    code, _, err = synthgap(capsys, "data", "describe", f"hf:{tmp_path / 'nothing-here'}")
    assert code == 2 and "cannot load dataset" in only_line(err)


def relabel(root, classes: dict[str, str], lines: set[int] | None = None) -> None:
    """Change the class of manifest lines by hand: `classes` maps old → new, on `lines` (1-based) or every line."""
    path = root / "manifest.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for number, record in enumerate(records, start=1):
        if record["class"] in classes and (lines is None or number in lines):
            record["class"] = classes[record["class"]]
    path.write_text("".join(json.dumps(record, sort_keys=True) + "\n" for record in records))


def test_a_manifest_that_disagrees_with_its_class_folders_is_refused_naming_the_file(reference_set, tmp_path, capsys):
    from tests.test_bad_inputs import only_line, synthgap

    one = tmp_path / "one"  # one airplane relabelled cat: the ClassLabel order would start with cat
    shutil.copytree(reference_set, one)
    relabel(one, {"airplane": "cat"}, lines={1})
    expected = (
        f"{one / 'manifest.jsonl'}, line 1: airplane/airplane_00000.png has class 'cat', but lies in "
        "airplane/, the folder of class 'airplane'"
    )
    with pytest.raises(SynthgapError, match=re.escape(expected)):
        export_generated(ExportConfig(one, tmp_path / "export-one"), progress=False)
    assert not (tmp_path / "export-one" / "data").exists()
    code, _, err = synthgap(capsys, "export", one, "--to", tmp_path / "export-cli", "--quiet")
    assert code == 2 and expected in only_line(err)

    for new_class in ("cat", "kitty"):  # a whole folder relabelled, to a class of the set or to a new one
        folder = tmp_path / new_class
        shutil.copytree(reference_set, folder)
        relabel(folder, {"airplane": new_class})
        expected = (
            rf"line 1: airplane/airplane_00000\.png has class '{new_class}', but lies in airplane/, which is "
            rf"not a folder of class '{new_class}'"
        )
        with pytest.raises(SynthgapError, match=expected):
            export_generated(ExportConfig(folder, tmp_path / f"export-{new_class}"), progress=False)


def test_class_folders_named_after_a_collision_are_their_classes_and_stay_one_to_one():
    from synthgap.generate.classes import unique_folders
    from synthgap.generate.output import check_class_folders

    ids = ["A b", "a_b", "x", "x_2"]
    assert unique_folders(ids) == ["A_b", "a_b_2", "x", "x_2"]
    records = [
        {"class": cls, "file": f"{folder}/{folder}_{i:05d}.png"}
        for cls, folder in zip(ids, unique_folders(ids), strict=True)
        for i in range(2)
    ]
    check_class_folders(Path("manifest.jsonl"), list(enumerate(records, start=1)))
    records[7]["class"] = records[6]["class"] = "x"  # the images of x_2, relabelled x: x lies in two folders
    with pytest.raises(
        SynthgapError,
        match=r"manifest.jsonl, line 7: x_2/x_2_00000\.png has class 'x', but lies in "
        r"x_2/, while other images of 'x' lie in x/",
    ):
        check_class_folders(Path("manifest.jsonl"), list(enumerate(records, start=1)))


def test_the_export_turns_datasets_progress_bars_off_for_its_own_writes_only(reference_set, tmp_path, monkeypatch):
    from synthgap.generate import export as export_module

    seen, write = [], export_module._write_shard

    def spy(*args, **kwargs):
        seen.append(datasets.are_progress_bars_disabled())
        return write(*args, **kwargs)

    monkeypatch.setattr(export_module, "_write_shard", spy)
    assert not datasets.are_progress_bars_disabled()
    export_generated(ExportConfig(reference_set, tmp_path / "export", images_per_shard=12), progress=False)
    assert seen == [True, True, True]  # "Creating parquet from Arrow format" and the like never reach a log
    assert not datasets.are_progress_bars_disabled()  # the caller's setting is back
