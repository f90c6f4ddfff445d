"""Where runs execute: this process, Ray tasks, or SLURM jobs (through submitit). What a run does is the same in each:
`run_in_worker` calls `execute_run`, which writes the record into the run's folder; only the driver appends records
to results.jsonl (runner.py). A backend only starts runs and reports which have ended. A run of several processes
(`experiments.group`) is started by `run_as_group` on the machine that has the run: here with the local backend, on
the worker's machine with Ray and SLURM (`group_in_worker`); a run on several machines is one SLURM job with a task
on each (`group_in_job`).

Every worker must see the experiment folder, the data cache and the model cache at the same paths (shared storage on
a cluster); a worker that cannot is one clear error.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from synthgap.data.cache import default_cache_dir
from synthgap.errors import DivergenceError, SynthgapError
from synthgap.experiments.execute import committed_record, execute_run
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runs import Run, RunContext
from synthgap.experiments.store import DataStore
from synthgap.io import atomic_write_json
from synthgap.train.compute import Compute, using_threads
from synthgap.train.distributed import ONE_NODE, Nodes, check_nproc, launch
from synthgap.train.loop import default_device

BACKENDS = ("local", "ray", "slurm")
RAY_START_NOTICES = "ray._private.authentication.authentication_token_setup"  # "Token authentication is enabled ..."


@dataclass(frozen=True)
class Resources:
    """What one run asks for: CPU threads (None: every core of this process locally; on Ray and SLURM one per
    process), GPUs (a fraction shares a GPU between runs; several are one process each) and the processes it trains
    in (`experiments.group`; on the CPU they share its threads)."""

    cpus: int | None = None
    gpus: float = 0.0
    processes: int = 1
    nodes: int = 1  # machines (SLURM): each starts `run_processes` processes

    def worker_compute(self) -> Compute:
        """What a run on a Ray worker or a SLURM job computes with: the threads of each machine shared by its
        processes, and the processes of every machine."""
        processes = run_processes(self)
        threads = max(1, (self.cpus or processes) // processes)
        return Compute("cuda" if self.gpus else "cpu", threads, processes * self.nodes)

    @property
    def worker_cpus(self) -> int:
        """The CPU cores a Ray task or a SLURM task (one per machine) of one run asks for: its processes' threads."""
        return self.worker_compute().threads * run_processes(self)


def gpu_share(resources: Resources) -> float:
    """The share of one GPU each run of `resources` has, for deciding whether its data fits there: a Ray run asking
    for 0.5 GPU shares its card with another and must not fill it alone; a run with one GPU or more has one to itself
    (the data lives on one device)."""
    return min(1.0, resources.gpus) if resources.gpus > 0 else 1.0


@dataclass(frozen=True, eq=False)  # a handle: hashed by identity
class Outcome:
    """What a worker sends back: the record, or the one-line error of a run that failed on bad input or diverged.
    (Errors travel as text: every engine moves plain data reliably; unexpected exceptions still propagate.)"""

    record: ResultRecord | None = None
    error: str | None = None
    diverged: bool = False


_WORKER_STORES: dict[str, DataStore] = {}  # one per spec in a worker process, reused by the runs it executes


def attempt(run: Run, ctx: RunContext, fingerprint: str) -> Outcome:
    """Execute one run; a diverged run is an outcome (the driver decides whether the others go on), not an error."""
    try:
        return Outcome(record=execute_run(run, ctx, fingerprint))
    except DivergenceError as exc:
        return Outcome(error=str(exc), diverged=True)


def run_in_worker(run: Run, ctx: RunContext, fingerprint: str) -> Outcome:
    """Execute one run in another process (a Ray worker, a SLURM job), whose errors travel back as text. The run
    computes with the threads and the device type its fingerprint was made with (`ctx.compute`)."""
    torch.set_num_threads(ctx.compute.threads)
    # A Ray worker runs many runs of one spec: it indexes and maps the images once, not once per run.
    store = _WORKER_STORES.setdefault(ctx.spec.model_dump_json(), ctx.store)
    ctx = replace(ctx, store=store, device=default_device())  # the worker's own device, not the driver's
    try:
        check_worker(run, ctx, ctx.device)
        return attempt(run, ctx, fingerprint)
    except SynthgapError as exc:
        return Outcome(error=str(exc))


def group_in_worker(run: Run, ctx: RunContext, fingerprint: str) -> Outcome:
    """Execute one run of several processes from a Ray worker or a SLURM job: they start on the worker's machine,
    with its GPUs (one each) or its CPU threads shared between them."""
    try:
        check_worker(run, ctx, default_device())
        return run_as_group(run, ctx, fingerprint, ctx.compute)
    except SynthgapError as exc:
        return Outcome(error=str(exc))


def check_worker(run: Run, ctx: RunContext, device: torch.device) -> None:
    """A worker sees the driver's folders and computes on the device type the run was planned for."""
    check_shared_storage(ctx)
    if device.type != ctx.compute.device:
        raise SynthgapError(
            f"worker on {socket.gethostname()} computes on {device.type}, but {run.name} was planned for "
            f"{ctx.compute.device} (a different device gives other numbers): check the GPUs each run asks for"
        )


def shared_folders(ctx: RunContext) -> dict[str, Path]:
    """The folders every worker reads and writes: the driver creates them, each worker checks it sees them."""
    cache_dir = Path(ctx.spec.data.cache_dir) if ctx.spec.data.cache_dir else default_cache_dir()
    return {"experiment folder": ctx.out, "model cache": ctx.models.folder, "data cache": cache_dir}


def check_shared_storage(ctx: RunContext) -> None:
    """The folders a run reads and writes must be the driver's, as seen from this worker."""
    for what, folder in shared_folders(ctx).items():
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise SynthgapError(
                f"worker on {socket.gethostname()} cannot use the {what} {folder}: --out, the model cache and the data "
                "cache must be on storage every worker mounts at the same path"
            )


class Backend(Protocol):
    slots: int  # runs in flight at most
    compute: Compute  # what every run it executes computes with (part of each run's identity)
    gpu_share: float  # the share of its GPU each run may fill with resident data (several runs may share a card)

    def submit(self, run: Run, ctx: RunContext, fingerprint: str) -> Any: ...

    def wait(self, handles: list[Any]) -> list[Any]:
        """Some of `handles` that have ended (at least one), blocking until then."""
        ...

    def outcome(self, handle: Any) -> Outcome: ...

    def close(self) -> None: ...


class LocalBackend:
    """Runs one after another in this process, on this process's device, each with `threads` CPU threads
    (default: the threads this process has now)."""

    slots = 1
    gpu_share = 1.0  # one run at a time has the whole device

    def __init__(self, threads: int | None = None, device: torch.device | None = None) -> None:
        self.compute = local_compute(threads, device)

    def submit(self, run: Run, ctx: RunContext, fingerprint: str) -> Outcome:
        with using_threads(self.compute.threads):
            return attempt(run, ctx, fingerprint)

    def wait(self, handles: list[Outcome]) -> list[Outcome]:
        return handles

    def outcome(self, handle: Outcome) -> Outcome:
        return handle

    def close(self) -> None:
        pass


FAILURE_FILE = "failure.json"  # the one-line error (and whether it diverged) of a run of several processes
FINGERPRINTS_FILE = "fingerprints.json"  # what the driver tells the processes of such a run


class GroupBackend(LocalBackend):
    """Runs one after another, each as `compute.processes` processes on this machine (its GPUs, one per process, or
    its CPU threads shared between them) that train the run's students together (`experiments.group`)."""

    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def submit(self, run: Run, ctx: RunContext, fingerprint: str) -> Outcome:
        return run_as_group(run, ctx, fingerprint, self.compute)


def run_as_group(run: Run, ctx: RunContext, fingerprint: str, compute: Compute) -> Outcome:
    """Execute `run` as `compute.processes` processes on this machine (`experiments.group`) and read what they left:
    the committed record, or the error the first failing process wrote."""
    argv = prepare_group(run, ctx, fingerprint, compute)
    return group_outcome(run, ctx, fingerprint, compute, _launched(run, compute.processes, argv))


def prepare_group(run: Run, ctx: RunContext, fingerprint: str, compute: Compute) -> list[str]:
    """Clear the run's last failure, tell its processes every run's fingerprint (a run finds those of the runs it
    builds on, a teacher, a scored model, there), and return their arguments."""
    run_dir = ctx.run_dir(run)
    (run_dir / FAILURE_FILE).unlink(missing_ok=True)
    atomic_write_json(run_dir / FINGERPRINTS_FILE, {**ctx.fingerprints, run.name: fingerprint})
    return group_args(run, ctx, compute)


def _launched(run: Run, processes: int, argv: list[str], nodes: Nodes = ONE_NODE) -> str | None:
    """Start this machine's `processes` of the run and wait for them: None, or why they stopped."""
    try:
        launch(processes, argv, nodes, module="synthgap.experiments.group")
        return None
    except SynthgapError as exc:  # a process failed: the one that failed says why, unless it was killed
        return f"{run.name}: {exc}"


def group_outcome(run: Run, ctx: RunContext, fingerprint: str, compute: Compute, stopped: str | None) -> Outcome:
    """What a run's processes left: its committed record, else the error the first that failed wrote (or why they
    stopped, `stopped`)."""
    run_dir = ctx.run_dir(run)
    record = committed_record(run_dir, fingerprint)  # recorded: all was done, whatever a process did after
    if record is not None:
        return Outcome(record=record)
    if stopped is not None:
        return told_failure(run_dir / FAILURE_FILE) or Outcome(error=stopped)
    return Outcome(error=f"the {compute.processes} processes of {run.name} ended without its record")


MEETING_FILE = "meeting.json"  # where the machines of a run on several meet: the first task's host and port
MEETING_WAIT_SECONDS = 600.0


def group_in_job(run: Run, ctx: RunContext, fingerprint: str) -> Outcome | None:
    """One task of a SLURM job that trains a run on several machines, one task each. The first task prepares the run,
    picks a free port on its machine and writes where to meet into the run's folder; every task then starts its
    machine's processes, which meet there and train the run together (its global first process writes the record,
    on whichever machine it is). The first task's outcome is the job's (`job.result()`); the others return None."""
    import submitit

    job = submitit.JobEnvironment()
    meeting = ctx.run_dir(run) / MEETING_FILE
    # a requeued job keeps its id: its attempt tells this start's meeting from the last one's
    attempt_id = f"{job.job_id}.{os.environ.get('SLURM_RESTART_COUNT', '0')}"
    try:
        if ctx.compute.processes % job.num_tasks:
            raise SynthgapError(
                f"{run.name}: {ctx.compute.processes} processes cannot be shared by the {job.num_tasks} tasks of its "
                "job (one task per machine, each starting the same number)"
            )
        if job.global_rank == 0:
            try:
                check_worker(run, ctx, default_device())
                argv = prepare_group(run, ctx, fingerprint, ctx.compute)
                atomic_write_json(meeting, {"job": attempt_id, "endpoint": f"{socket.gethostname()}:{_free_port()}"})
            except SynthgapError as exc:  # the other machines must not wait for a meeting that will not be
                atomic_write_json(meeting, {"job": attempt_id, "error": str(exc)})
                raise
        else:
            check_worker(run, ctx, default_device())
            argv = group_args(run, ctx, ctx.compute)
        endpoint = _meeting_point(meeting, attempt_id)
        nodes = Nodes(job.num_tasks, endpoint, f"synthgap-{attempt_id}")
        stopped = _launched(run, ctx.compute.processes // job.num_tasks, argv, nodes)
        return group_outcome(run, ctx, fingerprint, ctx.compute, stopped) if job.global_rank == 0 else None
    except SynthgapError as exc:
        return Outcome(error=str(exc))


def group_args(run: Run, ctx: RunContext, compute: Compute) -> list[str]:
    """The arguments of a run's processes (`python -m synthgap.experiments.group`), on every machine."""
    return [
        "--out", str(ctx.out), "--run", run.name, "--fingerprints", str(ctx.run_dir(run) / FINGERPRINTS_FILE),
        "--model-cache", str(ctx.models.folder), "--threads", str(compute.threads),
    ] + ["--quiet"] * (not ctx.progress)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _meeting_point(meeting: Path, job_id: str) -> str:
    """The endpoint the first task of job `job_id` wrote (an older job's file is not this job's)."""
    deadline = time.monotonic() + MEETING_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            told = json.loads(meeting.read_text())
            if isinstance(told, dict) and told.get("job") == job_id:
                if "error" in told:
                    raise SynthgapError(f"the first machine of the run stopped: {told['error']}")
                return str(told["endpoint"])
        except (OSError, ValueError, KeyError):  # not written yet, or being replaced
            pass
        time.sleep(0.2)
    raise SynthgapError(f"{meeting}: the first task of job {job_id} did not say where to meet within 10 minutes")


def told_failure(path: Path) -> Outcome | None:
    """What the main process of a failed run wrote before it stopped, if it did."""
    try:
        told = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return Outcome(error=str(told.get("error")), diverged=bool(told.get("diverged")))


@contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    """Logger `name` at `level` or above for the duration of the block (its own level restored after)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(before)


class RayBackend:
    """Each run a Ray task asking for `resources`; a lost worker's task is retried by Ray. Connects to `address`
    (an existing cluster), else starts Ray on this machine with `workers` × the resources."""

    def __init__(self, resources: Resources, *, address: str | None, workers: int | None) -> None:
        import ray

        self.ray = ray
        self.compute = resources.worker_compute()
        self.gpu_share = gpu_share(resources)
        cpus = resources.worker_cpus
        if not ray.is_initialized():
            local = {} if address else {"num_cpus": (workers or os.cpu_count() or 1) * cpus}
            if not address and resources.gpus:
                local["num_gpus"] = torch.cuda.device_count()
            # A Ray started here turns on token authentication and says so on stderr at every start; the notice
            # (a warning on that one logger) is silenced for the call, and what Ray does is left as it is.
            with _logger_level(RAY_START_NOTICES, logging.ERROR):
                ray.init(
                    address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local
                )
        cluster = ray.cluster_resources()
        fits = int(cluster.get("CPU", 1) // cpus)
        if resources.gpus:
            fits = min(fits, int(cluster.get("GPU", 0) // resources.gpus))
        if fits < 1:
            raise SynthgapError(f"the Ray cluster ({cluster}) has no room for one run asking for {resources}")
        self.slots = fits
        work = group_in_worker if self.compute.processes > 1 else run_in_worker
        self.task = ray.remote(work).options(num_cpus=cpus, num_gpus=resources.gpus, max_retries=3)

    def submit(self, run: Run, ctx: RunContext, fingerprint: str) -> Any:
        return self.task.remote(run, ctx, fingerprint)

    def wait(self, handles: list[Any]) -> list[Any]:
        done, _ = self.ray.wait(handles, num_returns=1)
        return done

    def outcome(self, handle: Any) -> Outcome:
        return self.ray.get(handle)

    def close(self) -> None:
        pass  # a Ray started here ends with this process; an existing cluster stays up


class SlurmBackend:
    """Each run a SLURM job submitted through submitit (`cluster="local"` runs them as local processes, which is
    what the tests use). Job files go to <out>/slurm/."""

    POLL_SECONDS = 2.0

    def __init__(
        self,
        resources: Resources,
        *,
        folder: Path,
        cluster: str | None,
        workers: int | None,
        parameters: dict[str, Any],
    ) -> None:
        import submitit

        self.compute = resources.worker_compute()
        self.gpu_share = 1.0  # a job gets whole GPUs (a fraction is rounded up), which no other job shares
        self.executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
        gpus = int(resources.gpus + 0.999)
        self.executor.update_parameters(cpus_per_task=resources.worker_cpus, gpus_per_node=gpus, **parameters)
        if resources.nodes > 1:  # a task per machine; submitit's local executor has one machine: its tasks stand in
            local = self.executor.cluster == "local"
            machines = {"tasks_per_node": resources.nodes} if local else {"nodes": resources.nodes}
            self.executor.update_parameters(**{"tasks_per_node": 1, **machines})
        self.slots = workers or 64
        self.work = (
            group_in_job if resources.nodes > 1 else group_in_worker if self.compute.processes > 1 else run_in_worker
        )

    def submit(self, run: Run, ctx: RunContext, fingerprint: str) -> Any:
        self.executor.update_parameters(name=run.name)
        return self.executor.submit(self.work, run, ctx, fingerprint)

    def wait(self, handles: list[Any]) -> list[Any]:
        while True:
            done = [job for job in handles if job.done()]
            if done:
                return done
            time.sleep(self.POLL_SECONDS)

    def outcome(self, handle: Any) -> Outcome:
        """The first task's outcome (a run on several machines has a task on each): its record, else the first
        error any task met (another machine's may be the cause)."""
        outcomes = handle.results()
        if outcomes[0].record is not None:
            return outcomes[0]
        return next((outcome for outcome in outcomes if outcome is not None and outcome.error), outcomes[0])

    def close(self) -> None:
        pass


def local_compute(threads: int | None = None, device: torch.device | None = None, processes: int = 1) -> Compute:
    """What runs started from this process compute with: its device, and `threads` (default: the threads it has
    now); with several `processes` per run, each has an equal share of those threads (at least one)."""
    threads = threads or torch.get_num_threads()
    return Compute((device or default_device()).type, max(1, threads // processes), processes)


def check_resources(name: str, resources: Resources) -> None:
    """What a run of backend `name` can have: GPUs only where this machine has them (local backend), several only as
    whole GPUs, one process each (a fraction shares one GPU between Ray or SLURM runs)."""
    if resources.processes < 1:
        raise SynthgapError(f"--nproc must be at least 1, got {resources.processes}")
    if resources.nodes < 1:
        raise SynthgapError(
            f"nodes per run (--nodes-per-run, resources.nodes) must be at least 1, got {resources.nodes}"
        )
    if resources.nodes > 1 and name != "slurm":
        raise SynthgapError(
            f"nodes per run {resources.nodes} (--nodes-per-run, resources.nodes): a run spans several machines with "
            "the slurm backend only (one task per machine); on one machine use --nproc or --gpus-per-run"
        )
    if resources.nodes > 1 and 0 < resources.gpus < 1:
        raise SynthgapError(f"nodes per run {resources.nodes}: each machine needs whole GPUs, got {resources.gpus:g}")
    if name == "local" and resources.gpus and not torch.cuda.is_available():
        raise SynthgapError(
            f"gpus per run (--gpus-per-run, resources.gpus) is {resources.gpus:g}, but this machine has no GPU and "
            "the local backend runs here: leave it out to train on the CPU, or use --backend ray or slurm on a cluster "
            "with GPUs"
        )
    if resources.gpus > 1 and resources.gpus != int(resources.gpus):
        raise SynthgapError(f"{_asked(resources)}: several GPUs per run are whole GPUs, one process each")
    if resources.gpus and resources.processes > 1 and resources.processes != resources.gpus:
        raise SynthgapError(f"{_asked(resources)}: a run on several GPUs has one process per GPU")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if name == "local" and resources.gpus > visible > 0:
        raise SynthgapError(f"{_asked(resources)}, but this machine has {visible} visible GPU(s)")
    if name == "local" and run_processes(resources) > 1:  # the GPUs of this machine; a worker checks its own
        check_nproc(run_processes(resources))


def _asked(resources: Resources) -> str:
    gpus = f"gpus per run {resources.gpus:g}" if resources.gpus else ""
    processes = f"--nproc {resources.processes}" if resources.processes > 1 else ""
    return " and ".join(part for part in (gpus, processes) if part)


def run_processes(resources: Resources) -> int:
    """The processes each run trains in: `--nproc`, or one per GPU when it has several."""
    return max(resources.processes, int(resources.gpus))


def planned_compute(name: str, resources: Resources) -> Compute:
    """What every run of backend `name` computes with, known before the backend starts (for --dry-run)."""
    check_resources(name, resources)
    if name != "local":
        return resources.worker_compute()
    return local_compute(resources.cpus, processes=run_processes(resources))


def make_backend(
    name: str,
    resources: Resources,
    *,
    out: Path,
    address: str | None = None,
    workers: int | None = None,
    slurm_cluster: str | None = None,
    slurm_parameters: dict[str, Any] | None = None,
) -> Backend:
    check_resources(name, resources)
    if name == "local" and run_processes(resources) > 1:
        return GroupBackend(local_compute(resources.cpus, processes=run_processes(resources)))
    if name == "local":
        return LocalBackend(resources.cpus)  # this process's device
    if name == "ray":
        return RayBackend(resources, address=address, workers=workers)
    if name == "slurm":
        return SlurmBackend(
            resources, folder=out / "slurm", cluster=slurm_cluster, workers=workers, parameters=slurm_parameters or {}
        )
    raise SynthgapError(f"unknown backend {name!r}; choose from: {', '.join(BACKENDS)}")
