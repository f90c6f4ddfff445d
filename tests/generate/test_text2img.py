"""Text-to-image on a tiny local pipeline: determinism across shards and runs, the manifest, resume, errors."""

import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from synthgap.data.sources import CIFAR10_CLASSES
from synthgap.errors import SynthgapError
from synthgap.generate.output import MANIFEST, PARTS
from synthgap.generate.text2img import generate_text2img
from tests.generate.tiny_pipelines import png_files, tiny_config

MANIFEST_FIELDS = {
    "class",
    "class_name",
    "label",
    "index",
    "file",
    "prompt",
    "template",
    "negative_prompt",
    "seed",
    "model",
    "revision",
    "scheduler",
    "steps",
    "guidance",
    "size",
    "sha256",
    "source",
}


def manifest_lines(root):
    return (root / MANIFEST).read_text().splitlines()


def test_reference_set_layout_and_manifest(reference_set, tiny_text2img):
    files = png_files(reference_set)
    expected = {f"{name}/{name}_{i:05d}.png" for name in CIFAR10_CLASSES for i in range(3)}
    assert set(files) == expected
    records = [json.loads(line) for line in manifest_lines(reference_set)]
    assert [(r["class"], r["index"]) for r in records] == [(c, i) for c in CIFAR10_CLASSES for i in range(3)]
    for record in records:
        assert set(record) == MANIFEST_FIELDS
        assert hashlib.sha256(files[record["file"]]).hexdigest() == record["sha256"]
        assert record["model"] == str(tiny_text2img) and record["revision"] is None
        assert (record["scheduler"], record["steps"], record["size"]) == ("ddim", 2, 32)
        assert record["class_name"] in record["prompt"]
    assert len({r["seed"] for r in records}) == 30
    assert Image.open(reference_set / records[0]["file"]).size == (32, 32)
    # the images are not all the same (seeds reach the pipeline)
    assert len({r["sha256"] for r in records}) == 30
    assert {p.name for p in (reference_set / "previews").iterdir()} == {f"{c}.png" for c in CIFAR10_CLASSES}


def test_two_shards_give_the_same_images_as_one(reference_set, tiny_text2img, tmp_path):
    out = tmp_path / "gen"
    first = generate_text2img(tiny_config(tiny_text2img, out, shard="1/2"), progress=False)
    assert first.manifest is None and first.written == first.shard_images < 30
    with pytest.raises(SynthgapError, match="generation not finished"):
        from synthgap.data.sources import open_source

        open_source(f"generated:{out}")
    second = generate_text2img(tiny_config(tiny_text2img, out, shard="0/2"), progress=False)
    assert second.manifest == out / MANIFEST and first.written + second.written == 30
    assert png_files(out) == png_files(reference_set)
    assert manifest_lines(out) == manifest_lines(reference_set)


def test_rerun_writes_nothing_and_resume_rebuilds_lost_files_and_lines(reference_set, tiny_text2img, tmp_path):
    out = tmp_path / "gen"
    shutil.copytree(reference_set, out)
    again = generate_text2img(tiny_config(tiny_text2img, out), progress=False)
    assert (again.written, again.already_done) == (0, 30)
    # simulate a kill: two images lost, the merged manifest not yet written, a torn last line, lost lines
    (out / "cat/cat_00001.png").unlink()
    (out / "truck/truck_00002.png").unlink()
    (out / MANIFEST).unlink()
    part = out / PARTS / "0-of-1.jsonl"
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:10]) + lines[10][:25])  # lines 11.. lost, the 11th torn
    resumed = generate_text2img(tiny_config(tiny_text2img, out), progress=False)
    assert (resumed.written, resumed.already_done) == (2, 28)
    assert png_files(out) == png_files(reference_set)
    assert manifest_lines(out) == manifest_lines(reference_set)
    assert all(json.loads(line) for line in part.read_text().splitlines())  # the torn line is gone


def test_other_settings_in_the_same_folder_are_refused(reference_set, tiny_text2img, tmp_path):
    out = tmp_path / "gen"
    shutil.copytree(reference_set, out)
    with pytest.raises(SynthgapError, match="other settings.*steps"):
        generate_text2img(tiny_config(tiny_text2img, out, steps=3), progress=False)


def test_negative_prompt_guidance_and_scheduler_reach_the_pipeline(tiny_text2img, tmp_path, reference_set):
    out = tmp_path / "gen"
    config = tiny_config(
        tiny_text2img,
        out,
        classes=str(_one_class(tmp_path)),
        per_class=2,
        scheduler="euler_a",
        negative_prompt="blurry",
        guidance=3.0,
        templates=("a {text} photo of a {name}",),
        text="sharp",
    )
    generate_text2img(config, progress=False)
    records = [json.loads(line) for line in manifest_lines(out)]
    assert [r["prompt"] for r in records] == ["a sharp photo of a cat"] * 2
    assert {(r["negative_prompt"], r["guidance"], r["scheduler"]) for r in records} == {("blurry", 3.0, "euler_a")}
    ours = np.asarray(Image.open(out / "cat/cat_00000.png"))
    reference = np.asarray(Image.open(reference_set / "cat/cat_00000.png"))
    assert not np.array_equal(ours, reference)


def _one_class(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("cat\n")
    return path


def test_unknown_model_offline_is_one_clear_error(tmp_path):
    config = tiny_config("nobody/no-such-model", tmp_path / "gen")
    with pytest.raises(SynthgapError) as error:
        generate_text2img(config, progress=False)
    message = str(error.value)
    assert "nobody/no-such-model" in message and "HF_HOME" in message and "--model" in message
    assert "\n" not in message
    with pytest.raises(SynthgapError, match="model folder not found"):
        generate_text2img(tiny_config(tmp_path / "nowhere", tmp_path / "gen"), progress=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nobody/no-such-model"], "cannot load model 'nobody/no-such-model'"),
        (["--shard", "3/2"], "bad --shard '3/2'"),
        (["--classes", "EMPTY"], "empty class list"),
        (["--size", "30"], "multiple of 8"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(args, message, tmp_path, tiny_text2img, monkeypatch, capsys):
    from synthgap.cli import main

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    args = [str(empty) if a == "EMPTY" else a for a in args]
    argv = ["synthgap", "generate", "text2img", "--out", str(tmp_path / "gen"), "--model", str(tiny_text2img), *args]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synthgap: error: ") and message in lines[0]
    assert not (tmp_path / "gen" / MANIFEST).exists()
