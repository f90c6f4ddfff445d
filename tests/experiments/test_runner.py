import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from synthgap.errors import SynthgapError
from synthgap.experiments import backends as backends_module
from synthgap.experiments import students as students_module
from synthgap.experiments.plan import plan
from synthgap.experiments.results import read_results
from synthgap.experiments.runner import exclusive, run_experiment
from tests.specs import tiny_raw, tiny_spec

EXPERIMENTS = [
    {"kind": "baseline"},
    {"kind": "layer_transfer", "n": [2, 16], "augmentation": "none"},
    {"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": [9]},
]
RUNNER = {"recipe": {"epochs": 2, "batch_size": 8}, "per_class": None}  # two epochs of batch 8 on every image


@pytest.fixture
def caches(tmp_path, monkeypatch):
    return tmp_path / "models"


def test_runs_every_planned_run_once_and_skips_them_on_rerun(cifake_root, tmp_path, caches, monkeypatch):
    spec = tiny_spec(cifake_root, EXPERIMENTS, **RUNNER)
    records = run_experiment(spec, tmp_path / "out", model_cache=caches, progress=False)
    assert [r.run for r in records] == [r.name for r in plan(spec)]
    by_name = {r.run: r for r in records}
    assert by_name["transfer-synthetic_to_real-n16-s0-aug_none"].prefix_cache is True
    assert by_name["transfer-synthetic_to_real-n09-s0"].prefix_cache is False  # augmented: no cache
    assert by_name["transfer-real_to_synthetic-n02-s0-aug_none"].source == "cifake:real"

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(backends_module, "execute_run", must_not_run)
    assert len(run_experiment(spec, tmp_path / "out", model_cache=caches, progress=False)) == len(records)


def test_a_copy_of_the_data_elsewhere_finds_its_runs_finished(cifake_root, tmp_path, caches, monkeypatch):
    """Runs are known by their images' bytes, not by where the files lie or when they were copied."""
    baseline = [{"kind": "baseline", "sides": ["real"]}]
    records = run_experiment(
        tiny_spec(cifake_root, baseline, **RUNNER), tmp_path / "out", model_cache=caches, progress=False
    )
    copy = tmp_path / "copy"
    shutil.copytree(cifake_root, copy, copy_function=shutil.copy)  # new paths and times

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(backends_module, "execute_run", must_not_run)
    again = run_experiment(tiny_spec(copy, baseline, **RUNNER), tmp_path / "out", model_cache=caches, progress=False)
    assert [r.fingerprint for r in again] == [r.fingerprint for r in records]


def test_source_models_are_reused_across_specs(cifake_root, tmp_path, caches, monkeypatch):
    first = tiny_spec(cifake_root, EXPERIMENTS, **RUNNER)
    run_experiment(first, tmp_path / "first", model_cache=caches, progress=False)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a cached source model was trained again")

    monkeypatch.setattr(students_module, "train_from_scratch", must_not_train)
    other = tiny_spec(
        cifake_root, [{"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": [17]}], **RUNNER
    )
    records = run_experiment(other, tmp_path / "second", model_cache=caches, progress=False)
    assert records[0].run == "baseline-synthetic-s0" and records[0].reused_model is True
    assert records[1].run == "transfer-synthetic_to_real-n17-s0"


def test_one_runner_per_output_folder(tmp_path):
    with exclusive(tmp_path):
        with pytest.raises(SynthgapError, match="another synthgap process"):
            with exclusive(tmp_path):
                pass


def _runner_command(spec_path: Path, out: Path, models: Path) -> list[str]:
    code = "import sys; from synthgap.cli import main; sys.argv = ['synthgap'] + sys.argv[1:]; main()"
    return [sys.executable, "-c", code, "run", str(spec_path), "--out", str(out), "--model-cache", str(models), "-q"]


@pytest.mark.slow
def test_killed_at_random_moments_resumes_without_losing_or_duplicating_runs(cifake_root, tmp_path, caches):
    """SIGKILL a real sweep several times, rerun the same command, and compare with an uninterrupted run."""
    spec = tiny_spec(cifake_root, EXPERIMENTS, **RUNNER)
    reference = {r.run: r.top1 for r in run_experiment(spec, tmp_path / "ref", model_cache=caches, progress=False)}

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(tiny_raw(cifake_root, EXPERIMENTS, **RUNNER)))
    out, models = tmp_path / "killed", tmp_path / "killed-models"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(1234)
    progress_at_kill = []
    for _ in range(4):
        (out / "spec.yaml").unlink(missing_ok=True)  # rewritten by each runner once it holds the folder lock
        process = subprocess.Popen(_runner_command(spec_path, out, models), env=env, stderr=subprocess.DEVNULL)
        while process.poll() is None and not (out / "spec.yaml").exists():  # imports done, runner working
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 3.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            progress_at_kill.append(len(read_results(out)))
    finished = subprocess.run(_runner_command(spec_path, out, models), env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert len(progress_at_kill) >= 2, "the sweep should have been interrupted at least twice"
    resumed = read_results(out)
    assert [r.run for r in resumed] == list(reference)  # every run once, in plan order
    assert {r.run: r.top1 for r in resumed} == reference  # and the same numbers as without interruption
    assert not list(out.glob(".*.tmp"))


def test_a_report_folder_left_by_a_kill_is_cleared_before_the_run(cifake_root, tmp_path, caches):
    out = tmp_path / "out"
    (out / ".figures.abc123.tmp").mkdir(parents=True)  # a report killed while drawing its figures
    (out / ".figures.abc123.tmp" / "part.png").write_bytes(b"x")
    (out / ".results.jsonl.tmp").write_text("torn")
    run_experiment(tiny_spec(cifake_root, EXPERIMENTS, **RUNNER), out, model_cache=caches, progress=False)
    assert not list(out.glob(".*.tmp"))
