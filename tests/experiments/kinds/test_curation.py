"""Curation: scores, what each rule keeps, the control's sizes, and a tiny end-to-end run with its lists."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from synthgap.data.sources import open_source
from synthgap.errors import SynthgapError
from synthgap.experiments.kinds.curation import (
    CurationRecord,
    CurationRun,
    classifier,
    kept_positions,
    knn_precision_scores,
)
from synthgap.experiments.runner import run_experiment
from synthgap.models import FAMILIES, ModelConfig, build_model, get_family
from tests.specs import tiny_spec


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_teachers_classifier_is_where_its_family_map_says_the_last_linear_layer(name):
    """The penultimate features are the classifier's input; the layer map names the classifier for every family, and
    for the shipped ones it is the model's last Linear layer (a ResNet's fc, a ViT's head)."""
    model = build_model(ModelConfig(name=name, num_classes=3, image_size=32, width=0.125))
    last_linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert classifier(model, get_family(name).layer_map) is last_linear


def test_knn_precision_is_non_negative_exactly_inside_a_real_ball():
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0]])
    synthetic = torch.tensor([[0.1, 0.1], [5.0, 5.0]])
    scores = knn_precision_scores(synthetic, real, k=1)  # radii: 1, 1, 1 and ~12.7 for the far point
    assert scores[0] > 0 and scores[1] >= 0  # (5, 5) is inside the far point's big ball
    assert knn_precision_scores(torch.tensor([[-30.0, -30.0]]), real, k=1)[0] < 0


def test_keep_takes_the_top_share_per_class_and_the_control_the_same_counts_at_random():
    labels = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.2, 0.3])
    top = kept_positions(CurationRun("c", 0, "teacher_confidence", keep=0.5), labels, 2, scores)
    assert top.tolist() == [1, 3, 5]
    control = kept_positions(CurationRun("r", 0, "random", keep=0.5), labels, 2, None)
    assert np.bincount(labels[control]).tolist() == [2, 1]
    rule = CurationRun("t", 0, "teacher_confidence", threshold=0.5)
    assert kept_positions(rule, labels, 2, scores).tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"keep": [0]}, r"keep must be in \(0, 1\]"),
        ({"keep": [0.5], "threshold": 0.1}, "not both"),
        ({"scores": ["vibes"]}, "scores"),
    ],
)
def test_bad_settings_fail_when_the_spec_is_read(cifake_root, block, message):
    with pytest.raises(SynthgapError, match=message):
        tiny_spec(cifake_root, [{"kind": "curation", **block}])


def test_curated_and_control_students_keep_the_same_sizes_and_write_their_lists(cifake_root, tmp_path):
    spec = tiny_spec(
        cifake_root,
        [{"kind": "curation", "scores": ["teacher_confidence", "real_knn"], "keep": [0.5], "k": 1}],
        data={"data_root": str(cifake_root), "per_class": 3},
    )
    out = tmp_path / "out"
    records = {r.run: r for r in run_experiment(spec, out, model_cache=tmp_path / "m", progress=False)}
    curated = [r for r in records.values() if isinstance(r, CurationRecord)]
    assert sorted(r.score for r in curated) == ["random", "real_knn", "teacher_confidence"]
    for r in curated:
        assert r.kept_per_class == [2] * 10 and r.kept_images == 20 and r.synthetic_images == 30
        assert r.real_labels_used == 0
        assert r.epochs == 2  # same_steps: 7 steps of 4 on the full set, 5 per epoch on 20 images → 2 epochs
    knn = records["curation-real_knn-keep0.5-s0"]
    assert knn.real_images_used == 30 and knn.teacher_fingerprint == records["baseline-real-s0"].fingerprint
    assert records["curation-random-keep0.5-s0"].teacher_fingerprint is None
    with open(out / "runs" / "curation-teacher_confidence-keep0.5-s0" / "kept.csv") as f:
        kept = list(csv.DictReader(f))
    assert len(kept) == 20 and {row["kept"] for row in kept} == {"1"}
    with open(out / "runs" / "curation-teacher_confidence-keep0.5-s0" / "scores.csv") as f:
        scores = list(csv.DictReader(f))
    assert len(scores) == 30 and all(0 <= float(row["score"]) <= 1 for row in scores)

    # the curated set is a data source: class folders of links to the kept images, in their classes
    curated = records["curation-teacher_confidence-keep0.5-s0"]
    index = open_source(f"folder:{curated.kept_folder}", "train", None)
    assert len(index) == 20 and sorted(index.counts().values()) == [2] * 10
    assert {p.name.split("-", 1)[0] for p in index.paths} == {f"{int(row['position']):06d}" for row in kept}
    again = tiny_spec(
        cifake_root,
        [{"kind": "baseline", "sides": ["synthetic"]}],
        data={"data_root": str(cifake_root), "synthetic": f"folder:{curated.kept_folder}"},
    )
    (trained,) = run_experiment(again, tmp_path / "again", model_cache=tmp_path / "m", progress=False)
    assert trained.train_images == 20 and trained.target == f"folder:{curated.kept_folder}"


def test_the_clip_score_reads_curates_scores_file_and_needs_no_teacher(cifake_root, tmp_path):
    import json

    from synthgap.io import file_digest

    fake = cifake_root / "cifake" / "train" / "FAKE"
    scored = tmp_path / "curated"  # what `synthgap curate` leaves: generate.json naming the scored set, the scores
    scored.mkdir()
    (scored / "generate.json").write_text(json.dumps({"kind": "curate", "source": str(fake)}))
    files = sorted(p.name for p in fake.iterdir())
    rng = np.random.default_rng(3)
    scores = {name: float(rng.random()) for name in files}
    rows = "".join(f"{name},x,{scores[name]},x,1\n" for name in files)
    (scored / "clip_scores.csv").write_text("file,class,score,top_class,kept\n" + rows)
    block = {"kind": "curation", "scores": ["clip"], "scores_file": str(scored / "clip_scores.csv"), "keep": [0.34]}
    spec = tiny_spec(cifake_root, [block], data={"data_root": str(cifake_root), "per_class": 3})
    out = tmp_path / "out"
    records = {r.run: r for r in run_experiment(spec, out, model_cache=tmp_path / "m", progress=False)}
    assert not any(name.startswith("baseline") for name in records)  # no teacher was trained
    clip = records["curation-clip-keep0.34-s0"]
    assert clip.teacher_fingerprint is None and clip.real_labels_used == clip.real_images_used == 0
    assert clip.scores_sha256 == file_digest(scored / "clip_scores.csv") and clip.kept_per_class == [1] * 10
    with open(out / "runs" / clip.run / "scores.csv") as f:
        table = list(csv.DictReader(f))
    for cls in {row["class"] for row in table}:
        members = [row for row in table if row["class"] == cls]
        best = max(members, key=lambda row: float(row["score"]))
        assert [row["kept"] for row in members if row is best] == ["1"]
    assert sorted(float(row["score"]) for row in table) == pytest.approx(sorted(scores.values()), rel=1e-5)

    (scored / "clip_scores.csv").write_text("file,class,score,top_class,kept\n" + rows.split("\n", 1)[1])
    spec = tiny_spec(cifake_root, [block], data={"data_root": str(cifake_root), "per_class": 3})
    with pytest.raises(SynthgapError, match="has no score for 1 training image"):
        run_experiment(spec, tmp_path / "out2", model_cache=tmp_path / "m", progress=False)
    with pytest.raises(SynthgapError, match="give both or neither"):
        tiny_spec(cifake_root, [{"kind": "curation", "scores": ["clip"]}])


def clip_scores_file(cifake_root, folder, rows):
    """What `synthgap curate` leaves in `folder` for cifake's synthetic training images: generate.json naming the
    scored set, and clip_scores.csv with `rows` of (file, score)."""
    import json

    folder.mkdir()
    (folder / "generate.json").write_text(json.dumps({"kind": "curate", "source": str(synthetic_train(cifake_root))}))
    (folder / "clip_scores.csv").write_text("file,class,score\n" + "".join(f"{f},x,{s}\n" for f, s in rows))
    return folder / "clip_scores.csv"


def synthetic_train(cifake_root):
    return cifake_root / "cifake" / "train" / "FAKE"


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", "twice"])
def test_a_non_finite_score_or_a_file_scored_twice_is_refused_by_dry_run_and_run(cifake_root, tmp_path, capsys, bad):
    """NaN would rank last and ±inf first, and a second row for a file would silently replace the first: each is
    refused before anything trains, by --dry-run and by the run alike, naming the file and its line."""
    from tests.test_bad_inputs import assert_run_and_dry_run_reject, write_spec

    names = sorted(p.name for p in synthetic_train(cifake_root).iterdir())
    rows = [(name, 0.5) for name in names]
    if bad == "twice":
        rows.append((names[2], 0.9))  # line 4 first, then the last line
        expected = f"line {len(rows) + 1}: {names[2]} is listed again (first on line 4)"
    else:
        rows[3] = (names[3], bad)
        expected = f"line 5: the score of {names[3]} is {bad}, not a finite number"
    scores = clip_scores_file(cifake_root, tmp_path / "curated", rows)
    spec = write_spec(
        tmp_path, cifake_root, {"experiments": [{"kind": "curation", "scores": ["clip"], "scores_file": str(scores)}]}
    )
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", f"{scores}, {expected}")


def test_a_non_finite_threshold_is_refused_when_the_spec_is_read(cifake_root):
    with pytest.raises(SynthgapError, match="threshold: must be a finite number, got nan"):
        tiny_spec(cifake_root, [{"kind": "curation", "threshold": float("nan")}])
