"""A spec's runs on several processes (`synthgap run --nproc 2`): on the CPU, two gloo processes of one thread each.
Each run ends with one record naming its processes, two such runs agree to the last digit, a rerun trains nothing,
and a killed process stops the command in one line; the same command then resumes to the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from synthgap import api
from synthgap.data.tensorfile import open_shared, parse_cache
from synthgap.data.tensors import ImageTensors, concat_images
from synthgap.errors import SynthgapError
from synthgap.experiments.results import read_results
from synthgap.io import save_safetensors
from tests.specs import tiny_raw

TIME_FIELDS = {"seconds", "curve"}  # wall time, and the learning curve's rows that carry it
EXPERIMENTS = [
    {"kind": "baseline"},
    {"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": [4]},  # a stage 2: the main process alone
    {"kind": "data_reduction", "fractions": [0.5], "arms": ["scratch"]},  # a run's own from-scratch student
]


def spec_file(root: Path, folder: Path, epochs: int = 2) -> Path:
    raw = tiny_raw(root, EXPERIMENTS, recipe={"epochs": epochs}, per_class=None)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(spec: Path, out: Path, models: Path, nproc: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "synthgap", "run", str(spec), "--out", str(out), "--model-cache", str(models),
        "--nproc", str(nproc), "--quiet",
    ]  # fmt: skip


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def numbers(out: Path) -> dict[str, dict]:
    """Every record of `out` by run, without its times."""
    return {
        record.run: {k: v for k, v in record.model_dump(mode="json").items() if k not in TIME_FIELDS}
        for record in read_results(out)
    }


@pytest.mark.slow
def test_a_killed_process_stops_the_command_and_the_same_command_resumes_to_the_uninterrupted_records(
    cifake_root, tmp_path
):
    """One uninterrupted command, and one whose process is killed in the first baseline and then run again: the two
    agree to the last digit in every run of every kind (a run's processes are reproducible, and a resumed student is
    the uninterrupted one). The kill lands after the first epoch's state; 16 epochs leave ample room."""
    spec = spec_file(cifake_root, tmp_path / "spec", epochs=16)
    reference = subprocess.run(run(spec, tmp_path / "ref", tmp_path / "models-ref"), env=env(), capture_output=True)
    assert reference.returncode == 0, reference.stderr.decode()
    out, models = tmp_path / "out", tmp_path / "models"
    every_epoch = env(SYNTHGAP_CHECKPOINT_MINUTES="0")  # a state after every epoch, so the kill leaves one
    driver = subprocess.Popen(run(spec, out, models), env=every_epoch, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while driver.poll() is None and not list(models.rglob("train_state.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(driver.pid)], capture_output=True, text=True).stdout.split()
    assert driver.poll() is None and len(workers) == 2, "the run finished before a process could be killed"
    os.kill(int(workers[-1]), signal.SIGKILL)
    _, stderr = driver.communicate(timeout=120)
    stderr = stderr.decode()
    assert driver.returncode == 2
    errors = [line for line in stderr.splitlines() if line.startswith("synthgap: error:")]
    assert len(errors) == 1 and "stopped (exit code -9)" in errors[0], stderr
    assert "Traceback" not in stderr
    assert not read_results(out)  # the first run was killed: nothing recorded
    assert list(models.rglob("train_state.pt"))  # a state to resume from
    resumed = subprocess.run(run(spec, out, models), env=every_epoch, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    first, second = numbers(tmp_path / "ref"), numbers(out)
    assert first == second  # bit-identical
    assert set(first) == {
        "baseline-real-s0",
        "baseline-synthetic-s0",
        "transfer-synthetic_to_real-n04-s0",
        "reduction-scratch-x2-s0-same_steps",
    }
    for record in first.values():
        assert record["compute"]["processes"] == 2 and record["compute"]["threads"] == 1
    assert not list(tmp_path.rglob("failure.json"))  # a run that resumed leaves no failure behind
    # the same command again: every run is recorded with these settings, nothing trains
    results = out / "results.jsonl"
    before = results.read_bytes()
    again = subprocess.run(run(spec, out, models), env=env(), capture_output=True)
    assert again.returncode == 0, again.stderr.decode()
    assert results.read_bytes() == before
    # one process is another setting: into the same folder it is refused, naming the processes
    one = subprocess.run(run(spec, out, models, 1), env=env(), capture_output=True, text=True)
    assert one.returncode == 2 and "processes" in one.stderr and "Traceback" not in one.stderr


@pytest.mark.slow
def test_a_run_that_diverges_on_several_processes_is_told_once_and_the_others_go_on(cifake_root, tmp_path):
    """Whichever process sees the divergence first tells the driver, which skips the run with --keep-going."""
    raw = tiny_raw(cifake_root, [{"kind": "baseline"}], recipe={"lr": 1e6}, per_class=None)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    command = [*run(tmp_path / "spec.yaml", tmp_path / "out", tmp_path / "models"), "--keep-going"]
    done = subprocess.run(command, env=env(), capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("synthgap: error:")]
    assert len(errors) == 1, done.stderr
    assert "2 run(s) failed and were not recorded" in errors[0]
    assert "baseline-real-s0 diverged: " in errors[0] and "baseline-synthetic-s0 diverged: " in errors[0]
    assert not read_results(tmp_path / "out")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gpus_per_run": 1.5, "backend": "ray"}, "several GPUs per run are whole GPUs, one process each"),
        ({"nproc": 0}, "--nproc must be at least 1, got 0"),
        ({"gpus_per_run": 2}, "this machine has no GPU"),
    ],
)
def test_processes_a_backend_cannot_give_are_refused_in_one_line(cifake_root, tmp_path, options, message):
    spec = spec_file(cifake_root, tmp_path / "spec")
    with pytest.raises(SynthgapError, match=message):
        api.dry_run(spec, tmp_path / "out", api.RunOptions(**options))
    assert not (tmp_path / "out").exists()


def test_a_dry_run_names_the_processes_of_each_run(cifake_root, tmp_path):
    for backend in ("local", "slurm"):  # on a cluster too: the job starts them on its machine
        options = api.RunOptions(nproc=2, backend=backend)
        assert "2 processes" in api.dry_run(spec_file(cifake_root, tmp_path / "spec"), tmp_path / "out", options)
    machines = api.RunOptions(backend="slurm", nodes_per_run=3)  # a process on each of 3 machines
    assert "3 processes" in api.dry_run(spec_file(cifake_root, tmp_path / "spec"), tmp_path / "out", machines)


def test_a_spec_asks_for_machines_per_run_in_its_resources(cifake_root, tmp_path):
    spec = spec_file(cifake_root, tmp_path / "spec")
    spec.write_text(spec.read_text() + "resources: {nodes: 2}\n")
    assert "2 processes" in api.dry_run(spec, tmp_path / "out", api.RunOptions(backend="slurm"))
    with pytest.raises(SynthgapError, match="nodes per run 2 .*: a run spans several machines with the slurm backend"):
        api.dry_run(spec, tmp_path / "out", api.RunOptions())


def test_another_process_opens_the_very_set_a_process_describes(tmp_path):
    """What the main process of a run tells the others to train on: the same rows, labels, classes and view."""
    images = torch.arange(6 * 3 * 8 * 8, dtype=torch.int64).reshape(6, 3, 8, 8).remainder(251).to(torch.uint8)
    path = tmp_path / "set.safetensors"
    metadata = {"classes": json.dumps(["a", "b", "c"]), "skipped": "[]", "name": "set"}
    save_safetensors({"images": images, "labels": torch.arange(6) % 3}, path, metadata=metadata)
    stored = parse_cache(path, ("a", "b", "c"))
    picked = stored.select([4, 1, 3]).with_resolution(6, "seen-at-6")
    mixed = concat_images([picked, stored.select([0, 2]).with_resolution(6, "also-at-6")]).select([4, 0, 2])
    for original in (stored, picked, mixed):
        opened = open_shared(original.shared())
        assert (opened.key, opened.classes, opened.resolution) == (original.key, original.classes, original.resolution)
        assert torch.equal(opened.labels, original.labels)
        assert torch.equal(opened.images, original.images)
    in_memory = ImageTensors(images, torch.arange(6) % 3, ("a", "b", "c"))
    with pytest.raises(ValueError, match="held only in memory"):
        in_memory.shared()
