"""One training run on several processes: DistributedDataParallel, one process per GPU (or, on the CPU, per group of
cores, with the gloo backend), started by torch's elastic launcher (what `torchrun` runs).

`synthgap train --nproc N` starts N copies of the same command (`launch`); each joins the process group (`joined`)
and trains one share of every batch. The global batch is the recipe's `batch_size` (each process takes every N-th
image of it), so the learning rate and its rule stay those of one process with that batch; gradients are averaged
across processes before each step, which with equal shares is the gradient of the whole batch. What differs from one
process: BatchNorm statistics are per process (a share of the batch) unless the recipe asks for `sync_bn` (GPUs
only: torch's SyncBatchNorm does not run on the CPU), and each process draws its own augmentation.

Only rank 0 writes: the record, the model, the epoch log and the training state. Every rank resumes from rank 0's
state, so a killed run, rerun, continues where it was saved. The world size is part of the run's settings: a
2-process run is not the 1-process run.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from synthgap.errors import SynthgapError


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes (records, the model, checkpoints, logs) and reports progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


ONE_PROCESS = World()


def current_world() -> World:
    """This process's world as the launcher's environment names it (RANK, WORLD_SIZE, LOCAL_RANK); one process when
    it was not launched that way."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return ONE_PROCESS
    return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def check_nproc(nproc: int, sync_bn: bool = False, machines: int = 1) -> None:
    """An `--nproc` this machine can run: at least 1, and on a machine with GPUs at most one process per GPU; with
    `sync_bn` (the recipe's), several processes (on this and the other `machines`) on GPUs."""
    if nproc < 1:
        raise SynthgapError(f"--nproc must be at least 1, got {nproc}")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and nproc > gpus:
        raise SynthgapError(f"--nproc {nproc} asks for more processes than the {gpus} visible GPUs (one each)")
    if sync_bn and nproc * machines == 1:
        raise SynthgapError("recipe.sync_bn shares BatchNorm statistics between processes: it needs --nproc 2 or more")
    if sync_bn and not gpus:
        raise SynthgapError(
            "recipe.sync_bn needs GPUs (torch's SyncBatchNorm does not run on the CPU); without it each process "
            "normalises its own share of the batch"
        )


@dataclass(frozen=True)
class Nodes:
    """The machines one run trains on: `count` of them, each starting its processes with the same command, meeting
    at `endpoint` (HOST:PORT of the first, as torchrun's --rdzv-endpoint), under the rendezvous id `run_id`."""

    count: int = 1
    endpoint: str | None = None
    run_id: str | None = None

    def check(self) -> None:
        if self.count < 1:
            raise SynthgapError(f"--nnodes must be at least 1, got {self.count}")
        if self.count > 1 and not self.endpoint:
            raise SynthgapError(
                f"--nnodes {self.count} needs --rdzv-endpoint HOST:PORT, where the processes of every machine meet "
                "(the first machine's name and a free port, the same on every machine)"
            )
        if self.endpoint is not None:
            host, _, port = self.endpoint.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise SynthgapError(f"--rdzv-endpoint must be HOST:PORT (e.g. node01:29500), got {self.endpoint!r}")


ONE_NODE = Nodes()


def launch(nproc: int, argv: Sequence[str], nodes: Nodes = ONE_NODE, module: str = "synthgap") -> None:
    """Run `python -m <module> <argv>` (by default the `synthgap` command) as `nproc` processes on this machine under
    torch's elastic launcher and wait for them; with several `nodes`, as this machine's part of one run of
    `nproc` × `nodes.count` processes.

    The processes share this one's CPU threads unless OMP_NUM_THREADS is set. A process that fails stops the others
    (no restarts): the error is one line naming the first failed rank and its exit code; the training state rank 0
    saved last lets the same command resume."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=nodes.count,
        max_nodes=nodes.count,
        nproc_per_node=nproc,
        run_id=nodes.run_id or str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint=nodes.endpoint or "localhost:0",  # one machine: a free port, as `torchrun --standalone` does
        max_restarts=0,
        monitor_interval=0.5,
    )
    total = nproc * nodes.count
    threads = None if "OMP_NUM_THREADS" in os.environ else max(1, torch.get_num_threads() // nproc)
    if threads is not None:  # the processes share this one's CPU threads: torch reads the variable when each starts
        os.environ["OMP_NUM_THREADS"] = str(threads)
    elastic = logging.getLogger("torch.distributed.elastic")
    level = elastic.level
    elastic.setLevel(logging.CRITICAL)  # its failure report is a multi-line traceback; ours is one line below
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", module, *argv)
    except ChildFailedError as exc:
        # those that stopped because another did (stopped by the launcher, or left without a peer) are not the cause
        followers = (-signal.SIGTERM, PEER_LOST)
        culprits = {r: f for r, f in exc.failures.items() if f.exitcode not in followers} or exc.failures
        rank, failure = min(culprits.items())
        if failure.exitcode == 2:  # an error the process reported itself (rank 0 prints it, above)
            raise SynthgapError(f"training process {rank} of {total} stopped on the error above") from None
        raise SynthgapError(
            f"training process {rank} of {total} stopped (exit code {failure.exitcode}) and the others were stopped; "
            "run the same command again to resume from the last saved state"
        ) from None
    except RendezvousError as exc:  # the machines of a run did not all meet (one never started, or stopped first)
        where = f" at {nodes.endpoint}" if nodes.endpoint else ""
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SynthgapError(f"the {nodes.count} machine(s) of the run did not all meet{where}: {why}") from None
    finally:
        elastic.setLevel(level)
        if threads is not None:
            del os.environ["OMP_NUM_THREADS"]


PEER_LOST = 3  # the exit code of a process whose peer stopped: it says nothing, the launcher names the cause


@contextmanager
def joined(world: World, device: torch.device, timeout: timedelta | None = None) -> Iterator[None]:
    """Membership of the run's process group while the block runs (nothing for one process): NCCL on CUDA devices,
    gloo on the CPU.

    The launcher reports for the run, so a process tells only what is its own: the main one its errors (one
    `synthgap: error:` line); the others exit with code 2 without a word, and any whose peer stopped (a collective
    that lost its connection) exits with `PEER_LOST` without a traceback."""
    if not world.distributed:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=world.rank, world_size=world.size, timeout=timeout)
    try:
        yield
        # none leaves before the main process has written the record: on several machines the others' launchers
        # read it back from the shared folder as soon as their processes end
        dist.barrier()
    except SynthgapError:
        if world.main:
            raise
        raise SystemExit(2) from None
    except RuntimeError as exc:  # gloo's and NCCL's errors (DistBackendError is one) when a peer went away
        if isinstance(exc, getattr(dist, "DistBackendError", ())) or _lost_peer(str(exc)):
            raise SystemExit(PEER_LOST) from None
        raise
    finally:
        dist.destroy_process_group()


def _lost_peer(message: str) -> bool:
    return any(word in message for word in ("Connection reset", "Connection closed", "Broken pipe", "gloo", "NCCL"))


def rank_device(world: World, device: torch.device) -> torch.device:
    """The device of this rank: its own GPU (by local rank) on a CUDA machine, else `device`."""
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def wrap(model: nn.Module, world: World, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """`model` as the training step calls it: under DistributedDataParallel (which averages gradients across the
    processes) when there are several, else as it is. With `sync_bn` its BatchNorm layers are swapped in place for
    SyncBatchNorm ones holding the same parameters and statistics (`plain_batchnorm` swaps them back)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        norms = {type(m).__name__ for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        if norms != {"BatchNorm2d"}:  # `plain_batchnorm` brings back BatchNorm2d layers, and nothing else
            has = ", ".join(sorted(norms)) or "no BatchNorm layers"
            raise SynthgapError(f"recipe.sync_bn synchronises BatchNorm2d layers; this model has {has}")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def plain_batchnorm(model: nn.Module) -> nn.Module:
    """`model` with every SyncBatchNorm layer swapped in place for a BatchNorm2d holding the same parameters and
    statistics, so a trained model evaluates, saves and transfers like one trained in a single process."""
    for name, child in model.named_children():
        if isinstance(child, nn.SyncBatchNorm):
            plain = nn.BatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            plain.weight, plain.bias = child.weight, child.bias  # the very tensors, as convert_sync_batchnorm shares
            plain.running_mean, plain.running_var = child.running_mean, child.running_var
            plain.num_batches_tracked = child.num_batches_tracked
            plain.train(child.training)
            setattr(model, name, plain)
        else:
            plain_batchnorm(child)
    return model


def agree(world: World, value: int, what: str, device: torch.device) -> None:
    """Check that every process holds the same `value` (e.g. the epoch it resumes from), else one error line."""
    if not world.distributed:
        return
    values = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world.size)]
    dist.all_gather(values, torch.tensor([value], dtype=torch.int64, device=device))
    if len({int(v) for v in values}) > 1:
        raise SynthgapError(f"the {world.size} processes disagree on {what}: {[int(v) for v in values]}")


def share_text(world: World, text: str | None, device: torch.device) -> str | None:
    """The main process's `text` in every process (the others pass None); None itself can be shared. Sent as bytes
    over the process group, so nothing is pickled."""
    encoded = None if text is None else text.encode()
    length = torch.tensor([-1 if encoded is None else len(encoded)], dtype=torch.int64, device=device)
    dist.broadcast(length, src=0)
    if int(length) < 0:
        return None
    if world.main:
        data = torch.from_numpy(np.frombuffer(encoded, dtype=np.uint8).copy()).to(device)
    else:
        data = torch.zeros(int(length), dtype=torch.uint8, device=device)
    dist.broadcast(data, src=0)
    return text if world.main else data.cpu().numpy().tobytes().decode()


def main_decides(world: World, decision: bool, device: torch.device) -> bool:
    """The main process's `decision` in every process (the others pass a placeholder): for what only the main
    process can decide, such as whether a run still has to train (it alone reads the results folder, under its lock)."""
    if not world.distributed:
        return decision
    flag = torch.tensor([int(decision)], dtype=torch.int64, device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())
