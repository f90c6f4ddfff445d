"""The output folder as a data source, and an experiment trained on a generated set end to end."""

import json
import shutil

import pytest

from synthgap.data.index import align_classes, check_same_classes
from synthgap.data.sources import CIFAR10_CLASSES, open_source
from synthgap.errors import SynthgapError
from synthgap.experiments.runner import run_experiment
from synthgap.generate.output import MANIFEST
from tests.specs import tiny_spec


def test_generated_source_follows_the_manifest(reference_set, tmp_path):
    index = open_source(f"generated:{reference_set}", "test")  # split is ignored
    assert index.classes == CIFAR10_CLASSES and len(index) == 30
    assert index.counts() == dict.fromkeys(CIFAR10_CLASSES, 3)
    assert index.paths[4] == reference_set / "automobile" / "automobile_00001.png" and index.labels[4] == 1
    # class order comes from the manifest, not from folder names
    out = tmp_path / "gen"
    shutil.copytree(reference_set, out)
    lines = (out / MANIFEST).read_text().splitlines()
    (out / MANIFEST).write_text("\n".join(lines[3:] + lines[:3]) + "\n")
    assert open_source(f"generated:{out}").classes == CIFAR10_CLASSES[1:] + CIFAR10_CLASSES[:1]


def test_generated_source_errors(reference_set, tmp_path):
    with pytest.raises(SynthgapError, match="generation not finished or not a synthgap generate output"):
        open_source(f"generated:{tmp_path}")
    out = tmp_path / "gen"
    shutil.copytree(reference_set, out)
    (out / json.loads((out / MANIFEST).read_text().splitlines()[0])["file"]).unlink()
    with pytest.raises(SynthgapError, match="1 images listed .* are missing"):
        open_source(f"generated:{out}")


def test_experiment_trains_on_a_generated_set(reference_set, cifake_root, tmp_path, monkeypatch):
    data = {
        "real": "cifake:real",
        "synthetic": f"generated:{reference_set}",
        "test": "cifake:real",
        "data_root": str(cifake_root),
    }
    experiments = [{"kind": "baseline", "sides": ["synthetic"]}]
    spec = tiny_spec(None, experiments, recipe={"batch_size": 8}, name="generated", data=data)
    (record,) = run_experiment(spec, tmp_path / "exp", model_cache=tmp_path / "models", progress=False)
    assert record.run == "baseline-synthetic-s0" and record.kind == "baseline"
    assert record.target == f"generated:{reference_set}" and record.train_images == 30
    assert 0 <= record.top1 <= 100 and record.top1 <= record.top5 <= 100 and record.epochs == 1


def test_generated_set_in_another_class_order_aligns_with_the_folder_by_name(reference_set, tmp_path):
    out = tmp_path / "gen"
    shutil.copytree(reference_set, out)
    lines = (out / MANIFEST).read_text().splitlines()
    (out / MANIFEST).write_text("\n".join(lines[3:] + lines[:3]) + "\n")  # class order: automobile, ..., airplane
    real = open_source(f"folder:{out}")  # the same images as a plain folder: previews/ and manifest.parts/ ignored
    generated = open_source(f"generated:{out}")
    assert real.classes == CIFAR10_CLASSES and real.counts() == dict.fromkeys(CIFAR10_CLASSES, 3)
    with pytest.raises(SynthgapError, match="different order"):
        check_same_classes(real.classes, generated.classes)
    real, aligned = align_classes([real, generated])
    assert aligned.classes == real.classes
    by_path = dict(zip(real.paths, real.labels.tolist(), strict=True))
    assert all(by_path[p] == label for p, label in zip(aligned.paths, aligned.labels.tolist(), strict=True))
