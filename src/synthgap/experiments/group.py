"""One run of a spec on several processes: `synthgap run --nproc N` (on the CPU, with the gloo backend) or, with the
local backend on a machine with GPUs, `--gpus-per-run N` / `resources.gpus: N` (one process per GPU, NCCL).

The driver (runner.py) stays one process and decides, orders and records runs as always. `GroupBackend` starts each
run as N processes of `python -m synthgap.experiments.group` under torch's elastic launcher (what `torchrun` runs):

- the main process executes the run as the local backend would, with the spec the driver saved in the results
  folder; it alone reads and writes files (the record, the model cache, training states);
- the others wait in `students.serve_trainings` and, each time the main process trains a student from scratch (a
  baseline, the source model of a transfer, a scratch arm: what costs most), train their share of every batch of it
  as DistributedDataParallel (`train.distributed`). What a run trains on cached features or against a teacher's
  outputs (stage 2, stitches, distillation) trains in the main process alone while they wait.

The number of processes is part of every run's identity (`Compute.processes`): its students' arithmetic differs
from one process's, so they are cached under other keys. A failed run's error (or divergence) comes back to the
driver through a file in the run's folder; a killed process stops the run, and the same command resumes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

import torch

from synthgap.errors import DivergenceError, SynthgapError, os_error_message
from synthgap.experiments.backends import FAILURE_FILE, Outcome, attempt
from synthgap.experiments.plan import follow_ups, plan
from synthgap.experiments.results import read_results
from synthgap.experiments.runs import RunContext
from synthgap.experiments.store import DataStore, ModelCache
from synthgap.experiments.students import end_trainings, serve_trainings
from synthgap.io import atomic_write_json
from synthgap.train.compute import Compute, using_threads
from synthgap.train.distributed import World, current_world, joined, rank_device
from synthgap.train.loop import default_device

# Between two students the others wait for the main process, which may spend hours on a stage 2 or on evaluation:
# the process group must not give up on them in the meantime.
PATIENCE = timedelta(days=30)


def execute_in_group(out: Path, name: str, fingerprints: Path, model_cache: Path, threads: int, progress: bool) -> None:
    """This process's part of run `name` of the spec saved in `out` (see the module docstring)."""
    world = current_world()
    device = rank_device(world, default_device())
    with using_threads(threads), joined(world, device, timeout=PATIENCE):
        if not world.main:
            try:
                serve_trainings(world, device)
            except SynthgapError as exc:  # e.g. its share of a batch diverged first: it tells the driver why
                _tell_failure(out, name, Outcome(error=str(exc), diverged=isinstance(exc, DivergenceError)))
                raise SystemExit(2) from None
            return
        outcome = _execute(
            out, name, json.loads(fingerprints.read_text()), model_cache, world, device, threads, progress
        )
        if outcome.record is None:
            # Stopped with the others possibly inside a training step: the launcher ends them, the driver reads why.
            _tell_failure(out, name, outcome)
            raise SystemExit(2)
        end_trainings(world, device)


def _tell_failure(out: Path, name: str, outcome: Outcome) -> None:
    atomic_write_json(out / "runs" / name / FAILURE_FILE, {"error": outcome.error, "diverged": outcome.diverged})


def _execute(
    out: Path,
    name: str,
    fingerprints: dict[str, str],
    model_cache: Path,
    world: World,
    device: torch.device,
    threads: int,
    progress: bool,
) -> Outcome:
    from synthgap.specload import load_spec

    try:
        spec = load_spec(out / "spec.yaml")
        # the driver checked the spec's data; the store opens what this run reads, as on a Ray worker
        store = DataStore(spec, progress)
        runs = plan(spec) + follow_ups(spec, read_results(out))
        run = next((run for run in runs if run.name == name), None)
        if run is None:
            raise SynthgapError(f"{out / 'spec.yaml'} plans no run {name}")
        ctx = RunContext(
            spec,
            store,
            ModelCache(model_cache),
            out,
            device,
            progress,
            fingerprints=fingerprints,
            compute=Compute(device.type, threads, world.size),
            world=world,
        )
        return attempt(run, ctx, fingerprints[name])
    except SynthgapError as exc:
        return Outcome(error=str(exc))
    except OSError as exc:  # a full disk, a folder gone: one line, as the local backend gives
        return Outcome(error=os_error_message(exc))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m synthgap.experiments.group", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--fingerprints", type=Path, required=True)
    parser.add_argument("--model-cache", type=Path, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    execute_in_group(args.out, args.run, args.fingerprints, args.model_cache, args.threads, not args.quiet)


if __name__ == "__main__":
    main(sys.argv[1:])
