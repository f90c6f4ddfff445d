"""Backends: the same runs give the same records wherever they execute (this process, Ray tasks, SLURM jobs through
submitit's local executor), and a driver killed mid-sweep leaves nothing lost or duplicated."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from synthgap.errors import SynthgapError
from synthgap.experiments.backends import (
    LocalBackend,
    RayBackend,
    Resources,
    SlurmBackend,
    make_backend,
    planned_compute,
)
from synthgap.experiments.plan import plan
from synthgap.experiments.results import read_results
from synthgap.experiments.runner import run_experiment
from synthgap.experiments.spec import ExperimentSpec
from synthgap.train.compute import processor_kind
from tests.specs import tiny_spec

SWEEP = [
    {"kind": "baseline"},
    {"kind": "layer_transfer", "n": [4, 16], "augmentation": "none"},  # each needs a baseline's model
]


@pytest.fixture
def sweep(cifake_root, tmp_path) -> ExperimentSpec:
    # the data cache is named in the spec: Ray and SLURM workers must find it without the test's environment
    data = {"data_root": str(cifake_root), "per_class": 2, "cache_dir": str(tmp_path / "data-cache")}
    return tiny_spec(cifake_root, SWEEP, name="backends", data=data)


def summary(records) -> dict:
    return {r.run: (r.top1, r.top5, r.fingerprint) for r in records}


@pytest.fixture
def local_records(sweep, tmp_path):
    spec = sweep
    records = run_experiment(
        spec, tmp_path / "local", model_cache=tmp_path / "local-models", progress=False, backend=LocalBackend(1)
    )
    return summary(records)  # workers below run with cpus=1: the same threads, the same arithmetic


@pytest.mark.slow
def test_ray_backend_gives_the_local_records(sweep, tmp_path, local_records):
    import ray

    spec = sweep
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
def test_slurm_backend_through_submitit_gives_the_local_records(sweep, tmp_path, local_records):
    spec = sweep
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


@pytest.fixture
def one_run(cifake_root, tmp_path) -> ExperimentSpec:
    """A run of several processes starts them all each time: one baseline keeps these tests short (test_group.py
    runs transfers and scratch arms in groups)."""
    data = {"data_root": str(cifake_root), "per_class": 2, "cache_dir": str(tmp_path / "data-cache")}
    return tiny_spec(cifake_root, [{"kind": "baseline", "sides": ["real"]}], name="backends", data=data)


@pytest.fixture
def group_records(one_run, tmp_path):
    """The run as 2 processes on this machine (`synthgap run --nproc 2 --cpus-per-run 2`)."""
    backend = make_backend("local", Resources(cpus=2, processes=2), out=tmp_path / "group")
    records = run_experiment(one_run, tmp_path / "group", model_cache=tmp_path / "group-models", progress=False,
                             backend=backend)  # fmt: skip
    assert {r.run for r in records} == {run.name for run in plan(one_run)}
    assert all(r.compute["processes"] == 2 and r.compute["threads"] == 1 for r in records)
    return summary(records)


def records_on(backend, spec: ExperimentSpec, folder) -> dict:
    records = run_experiment(spec, folder, model_cache=folder / "models", progress=False, backend=backend)
    return summary(records)


def local_slurm(resources: Resources, folder) -> SlurmBackend:
    """A SLURM backend on submitit's local executor (its jobs are processes here)."""
    backend = SlurmBackend(resources, folder=folder, cluster="local", workers=1, parameters={"timeout_min": 10})
    backend.POLL_SECONDS = 0.2
    return backend


@pytest.mark.slow
def test_a_run_of_two_processes_on_slurm_and_ray_gives_the_local_group_records(one_run, tmp_path, group_records):
    """Several processes per run on a cluster: the job (or task) starts them on its machine; the records are those
    of the same processes started here."""
    import ray

    resources = Resources(cpus=2, processes=2)
    assert planned_compute("slurm", resources) == planned_compute("ray", resources) == resources.worker_compute()
    assert resources.worker_cpus == 2
    assert records_on(local_slurm(resources, tmp_path / "slurm-jobs"), one_run, tmp_path / "slurm") == group_records
    try:
        assert records_on(RayBackend(resources, address=None, workers=1), one_run, tmp_path / "ray") == group_records
    finally:
        ray.shutdown()
    # two machines of one process each: two tasks of one job (submitit's local executor stands them on this one)
    machines = Resources(cpus=1, nodes=2)
    assert machines.worker_compute() == resources.worker_compute() and machines.worker_cpus == 1
    assert records_on(local_slurm(machines, tmp_path / "nodes-jobs"), one_run, tmp_path / "nodes") == group_records
    assert all(json.loads(path.read_text())["endpoint"] for path in (tmp_path / "nodes").rglob("meeting.json"))


def test_a_job_of_several_machines_tells_the_first_error_any_of_them_met(tmp_path):
    from synthgap.experiments.backends import MEETING_FILE, Outcome, _meeting_point

    backend = local_slurm(Resources(cpus=1, nodes=2), tmp_path / "jobs")  # cluster chosen or given: local here
    assert backend.executor._executor.parameters["tasks_per_node"] == 2  # its tasks stand for the machines

    class Job:  # what submitit hands back: every task's outcome, the first task's first
        def __init__(self, *outcomes):
            self.outcomes = list(outcomes)

        def results(self):
            return self.outcomes

    assert backend.outcome(Job(Outcome(error="timed out waiting"), Outcome(error="cannot use the data cache"))).error
    assert backend.outcome(Job(Outcome(error="lost a peer"), None)).error == "lost a peer"
    assert backend.outcome(Job(Outcome(), Outcome(error="cannot use the data cache"))).error == (
        "cannot use the data cache"  # the first task had nothing to say: another machine's cause
    )
    meeting = tmp_path / MEETING_FILE
    meeting.write_text(json.dumps({"job": "7.0", "error": "worker on n1 cannot use the model cache /m"}))
    with pytest.raises(SynthgapError, match="the first machine of the run stopped: worker on n1 cannot use"):
        _meeting_point(meeting, "7.0")
    meeting.write_text(json.dumps({"job": "7.1", "endpoint": "n1:29400"}))  # the same job, requeued: its new start
    assert _meeting_point(meeting, "7.1") == "n1:29400"


def test_a_cluster_run_is_not_checked_against_the_drivers_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a head node with one GPU submits 4-GPU runs
    assert planned_compute("slurm", Resources(gpus=4, cpus=16)).processes == 4
    assert planned_compute("ray", Resources(gpus=2)).processes == 2
    with pytest.raises(SynthgapError, match="this machine has 1 visible GPU"):
        planned_compute("local", Resources(gpus=4))


@pytest.mark.parametrize(
    ("backend", "resources", "message"),
    [
        ("local", Resources(nodes=2), "a run spans several machines with the slurm backend only"),
        ("ray", Resources(nodes=2), "a run spans several machines with the slurm backend only"),
        ("slurm", Resources(nodes=0), "nodes per run \\(--nodes-per-run, resources.nodes\\) must be at least 1, got 0"),
        ("slurm", Resources(nodes=2, gpus=0.5), "nodes per run 2: each machine needs whole GPUs, got 0.5"),
    ],
)
def test_machines_a_run_cannot_span_are_refused_in_one_line(tmp_path, backend, resources, message):
    with pytest.raises(SynthgapError, match=message):
        make_backend(backend, resources, out=tmp_path)
    assert planned_compute("slurm", Resources(cpus=8, gpus=2, nodes=3)).processes == 6


def test_local_runs_compute_with_the_given_threads_and_a_changed_count_is_a_changed_setting(
    cifake_root, sweep, tmp_path, monkeypatch
):
    from synthgap.experiments import backends

    real_baseline = tiny_spec(cifake_root, [{"kind": "baseline", "sides": ["real"]}]).experiments[0]
    spec = sweep.model_copy(update={"experiments": [real_baseline]})
    threads_seen = []
    execute = backends.execute_run

    def spy(run, ctx, fingerprint):
        threads_seen.append(torch.get_num_threads())
        return execute(run, ctx, fingerprint)

    monkeypatch.setattr(backends, "execute_run", spy)
    before = torch.get_num_threads()
    out, models = tmp_path / "out", tmp_path / "models"
    (record,) = run_experiment(spec, out, model_cache=models, progress=False, backend=LocalBackend(2))
    assert threads_seen == [2] and torch.get_num_threads() == before  # set for the run, then restored
    assert record.compute == {"device": "cpu", "threads": 2, "precision": "fp32", "processor": processor_kind()}
    with pytest.raises(SynthgapError, match="compute.threads 2 → 1"):  # named like any other changed setting
        run_experiment(spec, out, model_cache=models, progress=False, backend=LocalBackend(1))
    assert Resources(cpus=None).worker_compute().threads == 1  # Ray and SLURM: one thread unless asked


def test_backend_names_and_resources_are_checked(tmp_path):
    assert isinstance(make_backend("local", Resources(), out=tmp_path), LocalBackend)
    with pytest.raises(SynthgapError, match="unknown backend 'kubernetes'; choose from: local, ray, slurm"):
        make_backend("kubernetes", Resources(), out=tmp_path)


@pytest.mark.parametrize(
    ("backend", "gpus", "message"),
    [
        ("ray", 1.5, "gpus per run 1.5: several GPUs per run are whole GPUs, one process each"),
        ("slurm", 1.5, "gpus per run 1.5: several GPUs per run are whole GPUs, one process each"),
        ("local", 1, "this machine has no GPU and the local backend runs here"),
    ],
)
def test_gpus_a_run_cannot_have_are_refused_in_one_line(tmp_path, monkeypatch, backend, gpus, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for step in (
        lambda: planned_compute(backend, Resources(gpus=gpus)),
        lambda: make_backend(backend, Resources(gpus=gpus), out=tmp_path),
    ):
        with pytest.raises(SynthgapError, match=message):
            step()
    planned_compute(backend, Resources(gpus=0.5 if backend == "ray" else 0))  # a share of one GPU, or none: fine


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (Resources(gpus=1.5), "gpus per run 1.5: several GPUs per run are whole GPUs, one process each"),
        (Resources(gpus=2, processes=3), "a run on several GPUs has one process per GPU"),
        (Resources(gpus=3), "gpus per run 3, but this machine has 2 visible GPU\\(s\\)"),
        (Resources(gpus=1, processes=2), "a run on several GPUs has one process per GPU"),
    ],
)
def test_several_gpus_of_one_run_are_whole_visible_gpus_one_process_each(monkeypatch, resources, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(SynthgapError, match=message):
        planned_compute("local", resources)
    two = planned_compute("local", Resources(gpus=2, cpus=4))
    assert (two.device, two.processes, two.threads) == ("cuda", 2, 2)  # the run's threads shared by its processes


def test_a_worker_that_cannot_see_the_experiment_folder_is_one_clear_error(sweep, tmp_path):
    from synthgap.experiments.backends import run_in_worker
    from synthgap.experiments.runs import RunContext
    from synthgap.experiments.store import DataStore, ModelCache

    spec = sweep
    ctx = RunContext(spec, DataStore(spec, False), ModelCache(tmp_path / "models"), tmp_path / "not-mounted", None)
    outcome = run_in_worker(plan(spec)[0], ctx, "f")  # the error travels back to the driver as its one line
    assert outcome.record is None
    assert re.search("cannot use the experiment folder .*not-mounted: --out, the model cache", outcome.error)


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
def test_a_killed_driver_resumes_with_every_run_once(sweep, tmp_path, local_records, backend):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(sweep.model_dump(mode="json")))
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


def test_a_run_knows_its_share_of_the_gpu_for_deciding_where_its_data_lives(cifake_root, tmp_path, monkeypatch):
    from synthgap.experiments import students
    from synthgap.experiments.backends import gpu_share

    assert [gpu_share(Resources(gpus=g)) for g in (0, 0.25, 0.5, 1, 2)] == [1.0, 0.25, 0.5, 1.0, 1.0]
    shares = []
    real_fit = students.fit

    def recording_fit(*args, **kwargs):
        shares.append(kwargs["gpu_share"])
        return real_fit(*args, **kwargs)

    class SharedCard(LocalBackend):
        gpu_share = 0.25  # as a Ray run asking for a quarter of a GPU would have

    monkeypatch.setattr(students, "fit", recording_fit)
    spec = tiny_spec(cifake_root, [{"kind": "baseline", "sides": ["real"]}])
    run_experiment(spec, tmp_path / "exp", progress=False, backend=SharedCard())
    assert shares == [0.25]
