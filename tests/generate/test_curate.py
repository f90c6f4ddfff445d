"""`synthgap curate`: CLIP-scored curation of a generated set, with a tiny random-weight CLIP."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthgap.data.sources import open_source
from synthgap.errors import SynthgapError
from synthgap.generate import curate as curate_module
from synthgap.generate.curate import CurateConfig, Rule, curate_generated, read_clip_scores, resolve_clip
from synthgap.generate.tiny import save_tiny_clip

N_CLASSES, PER_CLASS = 10, 3  # the reference set: CIFAR-10, 3 images per class


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def run(reference_set: Path, clip: Path, out: Path, rule: str, **changes):
    config = CurateConfig(generated=reference_set, clip_model=str(clip), rule=rule, out=out, **changes)
    return curate_generated(config, progress=False)


def read_scores(out: Path) -> list[dict[str, str]]:
    with open(out / "clip_scores.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def manifest(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def article(name: str) -> str:
    return "an" if name[0] in "aeiou" else "a"  # the templates' "a" agrees with the name (prompts.fill_template)


def expected_keep(rows: list[dict[str, str]], rule: str) -> list[bool]:
    """The rule applied to the scores file, written out independently of curate.py."""
    if rule == "confidence":
        return [float(r["score"]) > 1 / N_CLASSES for r in rows]
    if rule == "agreement":
        return [r["top_class"] == r["class"] for r in rows]
    k = int(rule.removeprefix("top:"))
    keep = [False] * len(rows)
    for cls in {r["class"] for r in rows}:
        members = [i for i, r in enumerate(rows) if r["class"] == cls]
        for i in sorted(members, key=lambda i: (-float(rows[i]["score"]), i))[:k]:
            keep[i] = True
    return keep


@pytest.mark.parametrize("rule", ["confidence", "agreement", "top:2"])
def test_each_rule_keeps_what_it_should(reference_set, tiny_clip, tmp_path, rule):
    out = tmp_path / "curated"
    result = run(reference_set, tiny_clip, out, rule)
    rows = read_scores(out)
    source = manifest(reference_set)
    assert list(rows[0]) == ["file", "class", "score", "top_class", "kept"]
    assert [r["file"] for r in rows] == [r["file"] for r in source]  # every source image, in manifest order
    keep = expected_keep(rows, rule)
    assert [r["kept"] == "1" for r in rows] == keep
    assert result.kept == sum(keep) and result.images == N_CLASSES * PER_CLASS
    # what the curation experiment reads back: every source file (resolved against the scored set), exact scores
    scores = read_clip_scores(out / "clip_scores.csv")
    assert scores == {(reference_set / r["file"]).resolve(): float(r["score"]) for r in rows}

    lines = manifest(out)
    kept_files = [r["file"] for r, k in zip(rows, keep, strict=True) if k]
    assert [line["file"] for line in lines] == kept_files
    by_file = {r["file"]: r for r in source}
    for line in lines:
        original = by_file[line["file"]]
        assert {k: line[k] for k in original} == original  # the source line, plus the clip fields
        assert line["clip_rule"] == rule
        assert os.path.samefile(out / line["file"], reference_set / line["file"])  # a hard link: same inode

    index = open_source(f"generated:{out}")
    assert len(index.paths) == sum(keep)
    kept_per_class = {c.id: c.kept for c in result.classes}
    assert {cls: int((index.labels == i).sum()) for i, cls in enumerate(index.classes)} == {
        c: n for c, n in kept_per_class.items() if n
    }
    if rule == "top:2":
        assert set(kept_per_class.values()) == {2}

    settings = json.loads((out / "generate.json").read_text())
    assert settings["kind"] == "curate" and settings["rule"] == rule
    assert settings["source"] == str(reference_set.resolve())
    assert len(settings["classes"]) == N_CLASSES and settings["classes"][0] == [
        source[0]["class"],
        source[0]["class_name"],
    ]
    with open(out / "kept.csv", newline="") as f:
        kept_rows = list(csv.DictReader(f))
    assert [int(r["kept"]) for r in kept_rows] == [c.kept for c in result.classes]


def test_scores_are_zero_shot_clip_probabilities(reference_set, tiny_clip, tmp_path):
    """With one template, the scores are CLIPModel's own softmax(logits_per_image) at each image's class."""
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    out = tmp_path / "curated"
    run(reference_set, tiny_clip, out, "confidence", batch_size=7)  # batches that do not divide the set
    rows = read_scores(out)
    source = manifest(reference_set)
    names = list(dict.fromkeys(r["class_name"] for r in source))
    ids = list(dict.fromkeys(r["class"] for r in source))
    model = CLIPModel.from_pretrained(tiny_clip, use_safetensors=True).eval()
    tokens = CLIPTokenizer.from_pretrained(tiny_clip)(
        [f"a photo of {article(n)} {n}." for n in names], padding=True, return_tensors="pt"
    )
    images = [Image.open(reference_set / r["file"]).convert("RGB") for r in source]
    pixels = CLIPImageProcessor.from_pretrained(tiny_clip)(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        probs = model(**tokens, pixel_values=pixels).logits_per_image.softmax(dim=-1).numpy()
    labels = [ids.index(r["class"]) for r in source]
    np.testing.assert_allclose([float(r["score"]) for r in rows], probs[np.arange(len(labels)), labels], atol=1e-5)
    assert [r["top_class"] for r in rows] == [ids[i] for i in probs.argmax(axis=1)]


def test_rerun_is_idempotent_and_other_settings_are_refused(reference_set, tiny_clip, tmp_path):
    out = tmp_path / "curated"
    first = run(reference_set, tiny_clip, out, "top:1")
    before = (out / "manifest.jsonl").read_bytes()
    (out / "manifest.jsonl").unlink()  # as if killed before the end
    second = run(reference_set, tiny_clip, out, "top:1")
    assert (out / "manifest.jsonl").read_bytes() == before
    assert second.kept == first.kept == N_CLASSES and second.linked == N_CLASSES
    with pytest.raises(SynthgapError, match=r"other settings \(rule: 'top:1' → 'agreement'\)"):
        run(reference_set, tiny_clip, out, "agreement")
    with pytest.raises(SynthgapError, match="templates"):
        run(reference_set, tiny_clip, out, "top:1", templates=("a {name}",))


def test_a_rerun_removes_the_temp_files_a_killed_run_left(reference_set, tiny_clip, tmp_path):
    out = tmp_path / "curated"
    run(reference_set, tiny_clip, out, "top:1")
    (out / "manifest.jsonl").unlink()  # killed before the end, in the middle of writes
    left = [
        out / ".metadata.jsonl.0123456789ab.tmp",
        out / ".clip_scores.csv.0123456789ab.tmp",
        out / "airplane" / ".airplane_00002.png.0123456789ab.tmp",
    ]
    for tmp in left:
        tmp.write_text("cut short")
    mine = out / "notes.txt"  # not a temp file: kept
    mine.write_text("mine")
    run(reference_set, tiny_clip, out, "top:1")
    assert [tmp for tmp in left if tmp.exists()] == [] and mine.exists()
    assert sorted(p.name for p in out.rglob(".*")) == []


def test_a_source_whose_manifest_disagrees_with_its_folders_is_refused(reference_set, tiny_clip, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(reference_set, source)
    path = source / "manifest.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace('"class": "automobile"', '"class": "truck"')  # line 4: automobile_00000.png
    path.write_text("".join(lines))
    with pytest.raises(
        SynthgapError,
        match=r"line 4: automobile/automobile_00000\.png has class 'truck', but lies "
        r"in automobile/, the folder of class 'automobile'",
    ):
        run(source, tiny_clip, tmp_path / "curated", "top:1")
    assert not (tmp_path / "curated").exists()


def test_out_holding_another_run_is_refused(reference_set, tiny_clip, tmp_path):
    experiment = tmp_path / "experiment"
    experiment.mkdir()
    (experiment / "results.jsonl").write_text("")
    with pytest.raises(SynthgapError, match="holds an experiment"):
        run(reference_set, tiny_clip, experiment, "agreement")
    generation = tmp_path / "generation"
    generation.mkdir()
    (generation / "generate.json").write_text(json.dumps({"kind": "text2img"}))
    with pytest.raises(SynthgapError, match="holds a text2img run, not a curate run"):
        run(reference_set, tiny_clip, generation, "agreement")
    with pytest.raises(SynthgapError, match="is the generated set itself"):
        run(reference_set, tiny_clip, reference_set, "agreement")


def test_empty_classes_warn_and_nothing_kept_is_an_error(reference_set, tiny_clip, tmp_path, monkeypatch, caplog):
    def class_zero_wins(clip, images, names, templates, *, batch_size, progress):
        probs = np.full((len(images), len(names)), 0.5 / (len(names) - 1))
        probs[:, 0] = 0.5
        return probs

    monkeypatch.setattr(curate_module, "clip_probabilities", class_zero_wins)
    with caplog.at_level(logging.WARNING, logger="synthgap"):
        result = run(reference_set, tiny_clip, tmp_path / "agree", "agreement")
    assert result.kept == PER_CLASS
    (warning,) = [record.getMessage() for record in caplog.records]  # one `synthgap: warning:` line, on stderr
    empty = "automobile, bird, cat, deer, dog, frog, horse, ship, truck"
    assert warning == f"synthgap: warning: {N_CLASSES - 1} classes kept no image: {empty}"
    assert "warning" not in result.summary()  # the summary (stdout) does not repeat it without its prefix

    monkeypatch.setattr(
        curate_module,
        "clip_probabilities",
        lambda clip, images, names, *a, **k: np.full((len(images), len(names)), 1 / len(names)),
    )
    with pytest.raises(SynthgapError, match="keeps none of the 30 images"):
        run(reference_set, tiny_clip, tmp_path / "none", "confidence")
    assert not (tmp_path / "none" / "manifest.jsonl").exists()


def test_clip_folders_that_cannot_be_used(tiny_clip, tmp_path):
    pickled = tmp_path / "pickled-clip"
    pickled.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        (pickled / name).write_bytes((tiny_clip / name).read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    with pytest.raises(SynthgapError, match=r"refusing .*pytorch_model\.bin"):
        resolve_clip(str(pickled))
    with pytest.raises(SynthgapError, match="CLIP model folder not found"):
        resolve_clip(str(tmp_path / "missing"))
    with pytest.raises(SynthgapError, match="HF_HUB_OFFLINE is set.*--clip-model"):
        resolve_clip("nobody-here/no-such-clip")
    assert resolve_clip(str(tiny_clip)).weights_sha256


def test_bad_rules():
    assert Rule.parse("top:5") == Rule("top", 5) and str(Rule.parse("top:5")) == "top:5"
    for bad in ("top:0", "top:-1", "top:x", "best"):
        with pytest.raises(SynthgapError, match="rule"):
            Rule.parse(bad)


def test_cli_prints_the_table_and_fails_cleanly(reference_set, tiny_clip, tmp_path, monkeypatch, capsys):
    from synthgap.cli import main

    def cli(*args: str) -> int:
        monkeypatch.setattr(
            sys, "argv", ["synthgap", "curate", str(reference_set), "--clip-model", str(tiny_clip), *args, "--quiet"]
        )
        try:
            main()
        except SystemExit as exit_info:  # errors exit 2; a finished command returns
            return exit_info.code
        return 0

    assert cli("--rule", "top:2", "--out", str(tmp_path / "curated"), "--template", "a photo of a {name}.") in (0, None)
    printed = capsys.readouterr().out
    assert "class" in printed and "images" in printed and "kept" in printed
    assert "rule top:2: kept 20 of 30 images" in printed
    import datasets  # the curated set is an imagefolder dataset too, with its scores

    curated = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "curated"), split="train")
    assert len(curated) == 20 and {"clip_score", "clip_rule", "prompt", "seed"} <= set(curated.column_names)
    capsys.readouterr()  # datasets' own progress bars
    assert cli("--rule", "top:0", "--out", str(tmp_path / "bad")) == 2
    assert capsys.readouterr().err.startswith("synthgap: error: bad rule 'top:0'")


def test_a_curated_set_trains_a_student_and_its_scores_drive_training_side_curation(
    reference_set, tiny_clip, cifake_root, tmp_path
):
    from synthgap.experiments.kinds.curation import CurationRecord
    from synthgap.experiments.runner import run_experiment
    from tests.specs import tiny_spec

    out = tmp_path / "curated"
    run(reference_set, tiny_clip, out, "top:2")
    data = {"data_root": str(cifake_root), "per_class": None, "synthetic": f"generated:{out}"}
    spec = tiny_spec(cifake_root, [{"kind": "baseline", "sides": ["synthetic"]}], data=data)
    (record,) = run_experiment(spec, tmp_path / "train", model_cache=tmp_path / "m", progress=False)
    assert record.train_images == 20 and record.target == f"generated:{out}"

    # the same scores, read by `kind: curation` over the whole generated set: top 2 of 3 per class again
    block = {
        "kind": "curation",
        "scores": ["clip"],
        "scores_file": str(out / "clip_scores.csv"),
        "keep": [0.67],
        "control": False,
    }
    data = {"data_root": str(cifake_root), "per_class": None, "synthetic": f"generated:{reference_set}"}
    spec = tiny_spec(cifake_root, [block], data=data)
    (curated,) = run_experiment(spec, tmp_path / "curation", model_cache=tmp_path / "m", progress=False)
    assert isinstance(curated, CurationRecord) and curated.kept_per_class == [2] * 10
    kept = {p.name.split("-", 1)[1] for p in Path(curated.kept_folder).rglob("*.png")}
    assert kept == {Path(r["file"]).name for r in manifest(out)}
