"""Backends: the same runs give the same records wherever they execute (this process, Ray tasks, SLURM jobs through
submitit's local executor), and a driver killed mid-sweep leaves nothing lost or duplicated."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from synthgap.config import validate
from synthgap.errors import SynthgapError
from synthgap.experiments.backends import LocalBackend, RayBackend, Resources, SlurmBackend, make_backend
from synthgap.experiments.plan import plan
from synthgap.experiments.results import read_results
from synthgap.experiments.runner import run_experiment
from synthgap.experiments.spec import ExperimentSpec

SWEEP = {
    "name": "backends",
    "model": {"width": 0.125},
    "recipe": {"epochs": 1, "batch_size": 4, "precision": "fp32"},
    "seeds": [0],
    "experiments": [
        {"kind": "baseline"},
        {"kind": "layer_transfer", "n": [4, 16], "augmentation": "none"},  # each needs a baseline's model
    ],
}


def sweep_spec(cifake_root, tmp_path) -> ExperimentSpec:
    # the data cache is named in the spec: Ray and SLURM workers must find it without the test's environment
    data = {"data_root": str(cifake_root), "per_class": 2, "cache_dir": str(tmp_path / "data-cache")}
    return validate(ExperimentSpec, {**SWEEP, "data": data})


def summary(records) -> dict:
    return {r.run: (r.top1, r.top5, r.fingerprint) for r in records}


@pytest.fixture
def local_records(cifake_root, tmp_path):
    spec = sweep_spec(cifake_root, tmp_path)
    return summary(run_experiment(spec, tmp_path / "local", model_cache=tmp_path / "local-models", progress=False))


@pytest.mark.slow
def test_ray_backend_gives_the_local_records(cifake_root, tmp_path, local_records):
    import ray

    spec = sweep_spec(cifake_root, tmp_path)
    backend = RayBackend(Resources(cpus=1), address=None, workers=2)
    try:
        assert backend.slots == 2
        records = run_experiment(
            spec, tmp_path / "ray", model_cache=tmp_path / "ray-models", progress=False, backend=backend
        )
    finally:
        ray.shutdown()
    assert summary(records) == local_records
    assert sorted(r.run for r in read_results(tmp_path / "ray")) == sorted(run.name for run in plan(spec))


@pytest.mark.slow
def test_slurm_backend_through_submitit_gives_the_local_records(cifake_root, tmp_path, local_records):
    spec = sweep_spec(cifake_root, tmp_path)
    backend = SlurmBackend(
        Resources(cpus=1),
        folder=tmp_path / "slurm" / "jobs",
        cluster="local",
        workers=2,
        parameters={"timeout_min": 10},
    )
    backend.POLL_SECONDS = 0.2
    records = run_experiment(
        spec, tmp_path / "slurm", model_cache=tmp_path / "slurm-models", progress=False, backend=backend
    )
    assert summary(records) == local_records
    assert list((tmp_path / "slurm" / "jobs").iterdir())  # submitit's job folders: the runs really were jobs


def test_backend_names_and_resources_are_checked(tmp_path):
    assert isinstance(make_backend("local", Resources(), out=tmp_path), LocalBackend)
    with pytest.raises(SynthgapError, match="unknown backend 'kubernetes'; choose from: local, ray, slurm"):
        make_backend("kubernetes", Resources(), out=tmp_path)


def test_a_worker_that_cannot_see_the_experiment_folder_is_one_clear_error(cifake_root, tmp_path):
    from synthgap.experiments.backends import run_in_worker
    from synthgap.experiments.runs import RunContext
    from synthgap.experiments.store import DataStore, ModelCache

    spec = sweep_spec(cifake_root, tmp_path)
    ctx = RunContext(spec, DataStore(spec, False), ModelCache(tmp_path / "models"), tmp_path / "not-mounted", None)
    with pytest.raises(SynthgapError, match="cannot use the experiment folder .*not-mounted: --out, the model cache"):
        run_in_worker(plan(spec)[0], ctx, "f", threads=1)


def _driver(spec_path, out, models, backend) -> list[str]:
    code = "import sys; from synthgap.cli import main; sys.argv = ['synthgap'] + sys.argv[1:]; main()"
    return [
        sys.executable,
        "-c",
        code,
        "run",
        str(spec_path),
        "--out",
        str(out),
        "--model-cache",
        str(models),
        "--backend",
        backend,
        "--workers",
        "2",
        "--slurm-cluster",
        "local",
        "-q",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ray", "slurm"])
def test_a_killed_driver_resumes_with_every_run_once(cifake_root, tmp_path, local_records, backend):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(sweep_spec(cifake_root, tmp_path).model_dump(mode="json")))
    out, models = tmp_path / backend, tmp_path / f"{backend}-models"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen(
        _driver(spec_path, out, models, backend), env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while driver.poll() is None and len(read_results(out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the baselines are recorded; transfers are running or about to
    assert driver.poll() is None, "the sweep finished before it could be interrupted"
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and whatever it started
    driver.wait()
    finished = subprocess.run(_driver(spec_path, out, models, backend), env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    resumed = read_results(out)
    assert sorted(r.run for r in resumed) == sorted(local_records)  # every run once
    assert summary(resumed) == local_records
