"""`analyze` end to end on a tiny experiment folder made by `run_experiment` (3 images per class and side)."""

import pytest
import torch

from synthgap.analysis import analyze, read_analysis, summary_lines
from synthgap.analysis.analyze import capped, subset_positions
from synthgap.data.tensors import ImageTensors
from synthgap.errors import SynthgapError
from synthgap.experiments.results import read_results
from synthgap.experiments.runner import run_experiment
from synthgap.progress import ENV
from synthgap.report.analysis import analysis_lines
from tests.specs import tiny_spec


def tiny_experiment(data_root, out, model_cache, seeds=(0,)):
    spec = tiny_spec(data_root, [{"kind": "baseline"}], per_class=None, seeds=list(seeds))
    run_experiment(spec, out, model_cache=model_cache, progress=False)
    return out


def test_analyze_writes_every_layer_and_measure(cifake_root, tmp_path, model_cache):
    out = tiny_experiment(cifake_root, tmp_path / "exp", model_cache)
    path = analyze(out, model_cache=model_cache, probe_per_class=2, max_images=None, progress=False)
    assert path == out / "analysis.jsonl"
    rows = read_analysis(out)
    layers = list(range(1, 19))
    overall = [r for r in rows if r.class_name is None]
    for measure, keys in {
        "cka": [("R~S", None)],
        "probe_top1": [(None, "R"), (None, "S")],
        "fd": [(None, "R"), (None, "S")],
        "kid": [(None, "R"), (None, "S")],
        "precision": [(None, "R"), (None, "S")],
        "recall": [(None, "R"), (None, "S")],
    }.items():
        for pair, student in keys:
            got = sorted(r.layer for r in overall if r.measure == measure and r.pair == pair and r.student == student)
            assert got == layers, (measure, pair, student)
    cka = [r for r in rows if r.measure == "cka"]
    assert {r.pair for r in cka} == {"R~S"}  # one seed per side: no noise floor
    assert all(r.value is not None and -1.0 <= r.value <= 1.0 + 1e-9 for r in cka)
    assert all(r.images == {"test": 30} and r.runs == ["baseline-real-s0", "baseline-synthetic-s0"] for r in cka)
    probe = next(r for r in rows if r.measure == "probe_top1" and r.layer == 5)
    assert probe.images == {"train": 20, "test": 30} and probe.seeds == [0] and probe.model_keys[0]
    per_class = [r for r in rows if r.measure == "kid" and r.class_name is not None]
    assert len(per_class) == 18 * 2 * 10 and all(r.images == {"real": 3, "synthetic": 3} for r in per_class)
    assert not any(r.measure in ("precision", "recall") and r.class_name for r in rows)
    fd_wide = next(r for r in overall if r.measure == "fd" and r.layer == 17 and r.student == "R")
    assert fd_wide.value is None and "images per feature dimension" in fd_wide.note  # 30 images, 64 dimensions
    assert "CKA(R, S)" in "\n".join(summary_lines(rows))

    lines = analysis_lines(read_results(out), rows, out)
    assert lines[0].startswith("## Per-layer diagnostics of R and S (resnet18)")
    for figure in ("analysis_cka.png", "analysis_probes.png", "analysis_domain_gap.png"):
        assert (out / "figures" / figure).stat().st_size > 0
    assert "no seed noise floor" in "\n".join(lines)


def test_progress_off_a_terminal_is_plain_lines_and_follows_the_setting(
    cifake_root, tmp_path, model_cache, capsys, monkeypatch
):
    out = tiny_experiment(cifake_root, tmp_path / "exp", model_cache)
    capsys.readouterr()
    monkeypatch.delenv(ENV, raising=False)
    analyze(out, model_cache=model_cache, probe_per_class=1, max_images=20, progress=True)
    captured = capsys.readouterr()
    assert "\r" not in captured.err and captured.out == ""
    lines = captured.err.splitlines()
    for desc, total in (("R probes and domain gap", "18 layer"), ("S probes and domain gap", "18 layer")):
        assert f"{desc}: 0/{total}" in lines and any(line.startswith(f"{desc}: done 18/{total} in ") for line in lines)
    for desc in ("test pass (CKA)", "R real", "R synthetic", "S real", "S synthetic"):
        assert any(line.startswith(f"{desc}: done ") for line in lines), desc
    monkeypatch.setenv(ENV, "off")
    analyze(out, model_cache=model_cache, probe_per_class=1, max_images=20, progress=True)
    assert capsys.readouterr().err == ""


def test_two_seeds_give_a_noise_floor(cifake_root, tmp_path, model_cache):
    out = tiny_experiment(cifake_root, tmp_path / "exp", model_cache, seeds=(0, 1))
    analyze(out, model_cache=model_cache, probe_per_class=1, max_images=20, progress=False)
    rows = read_analysis(out)
    cka = [r for r in rows if r.measure == "cka"]
    assert {r.pair for r in cka} == {"R~S", "R~R", "S~S"}
    floor = next(r for r in cka if r.pair == "R~R" and r.layer == 1)
    assert floor.runs == ["baseline-real-s0", "baseline-real-s1"] and floor.seeds == [0, 1]
    assert floor.images == {"test": 20}  # max_images: 2 per class


def test_missing_models_and_baselines_are_named(cifake_root, tmp_path, model_cache):
    out = tiny_experiment(cifake_root, tmp_path / "exp", model_cache)
    with pytest.raises(SynthgapError, match="not in the model cache"):
        analyze(out, model_cache=tmp_path / "elsewhere", probe_per_class=1, max_images=None, progress=False)
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(line for line in lines if "baseline-synthetic" not in line) + "\n")
    with pytest.raises(SynthgapError, match="no synthetic-side baseline"):
        analyze(out, model_cache=model_cache, probe_per_class=1, max_images=None, progress=False)
    with pytest.raises(SynthgapError, match="no results.jsonl"):
        analyze(tmp_path / "empty", model_cache=model_cache, probe_per_class=1, max_images=None, progress=False)


def test_subsets_are_stratified_and_nested():
    labels = torch.arange(3).repeat_interleave(torch.tensor([5, 8, 2]))
    images = ImageTensors(torch.zeros(15, 3, 2, 2, dtype=torch.uint8), labels, ("a", "b", "c"))
    small, large = subset_positions(images, per_class=2), subset_positions(images, 9)  # 9 // 3 = 3 per class
    assert torch.bincount(labels[small]).tolist() == [2, 2, 2]
    assert torch.bincount(labels[large]).tolist() == [3, 3, 2]  # class c has only 2
    assert set(small) <= set(large)
    assert capped(images, None) is images and len(capped(images, 9)) == 8
