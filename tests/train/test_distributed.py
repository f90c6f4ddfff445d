"""One run on several processes (`synthgap train --nproc 2`): DistributedDataParallel with the gloo backend on the
CPU, two processes of one thread each. The run finishes with one record, is reproducible, and a killed process
stops the run in one line; the same command then resumes it to the result of an uninterrupted run."""

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

from synthgap.data.loader import TensorLoader
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import NORMALIZATIONS, build_augmentation
from synthgap.errors import SynthgapError
from synthgap.experiments.results import read_results
from synthgap.train.checkpoint import METADATA
from synthgap.train.distributed import Nodes, launch

RUN = "baseline-real-s0"
TIME_FIELDS = {"seconds", "curve"}  # wall time, and the learning curve's rows that carry it


def train(root: Path, out: Path, epochs: int) -> list[str]:
    return [
        sys.executable, "-m", "synthgap", "train", "--train-data", "cifake:real", "--data-root", str(root),
        "--width", "0.125", "--epochs", str(epochs), "--batch-size", "4", "--precision", "fp32", "--out", str(out),
        "--nproc", "2", "--quiet",
    ]  # fmt: skip


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def numbers(out: Path) -> dict:
    """The run's record without its times, and the checksum of the saved weights."""
    (record,) = read_results(out)
    fields = {k: v for k, v in record.model_dump(mode="json").items() if k not in TIME_FIELDS}
    weights = json.loads((out / RUN / "checkpoint" / METADATA).read_text())["weights_checksum"]["sha256"]
    return {**fields, "weights": weights}


@pytest.mark.slow
def test_a_killed_process_stops_the_run_and_the_same_command_resumes_it_to_the_uninterrupted_run(cifake_root, tmp_path):
    """One uninterrupted run and one whose process is killed and then run again agree to the last digit, weights
    included (two processes are reproducible, and a resumed run is the uninterrupted one)."""
    epochs = 16  # the kill lands after the first epoch's state: the other 15 leave ample room
    reference = subprocess.run(train(cifake_root, tmp_path / "ref", epochs), env=env(), capture_output=True)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "out"
    every_epoch = env(SYNTHGAP_CHECKPOINT_MINUTES="0")  # a state after every epoch, so the kill leaves one
    launcher = subprocess.Popen(
        train(cifake_root, out, epochs), env=every_epoch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    state = out / RUN / "train_state.pt"
    deadline = time.monotonic() + 120
    while launcher.poll() is None and not state.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
    assert launcher.poll() is None and len(workers) == 2, "the run finished before a process could be killed"
    os.kill(int(workers[-1]), signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 2
    errors = [line for line in stderr.splitlines() if line.startswith("synthgap: error:")]
    assert len(errors) == 1 and "stopped (exit code -9)" in errors[0] and "run the same command again" in errors[0]
    assert "Traceback" not in stderr
    assert state.exists() and not read_results(out)  # nothing recorded; a state to resume from
    resumed = subprocess.run(train(cifake_root, out, epochs), env=every_epoch, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    first = numbers(tmp_path / "ref")
    assert numbers(out) == first  # bit-identical to the uninterrupted run
    assert first["compute"]["processes"] == 2 and first["compute"]["threads"] == 1
    assert first["train_images"] == 30
    assert not list(tmp_path.rglob(".*.launch.*.yaml"))  # the launch config goes once the run is done
    # the same command again: the main process finds the record and tells the other one; neither trains
    results, weights = out / "results.jsonl", out / RUN / "checkpoint" / "model.safetensors"
    before = (results.read_bytes(), weights.stat().st_mtime_ns)
    again = subprocess.run(train(cifake_root, out, epochs), env=env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (results.read_bytes(), weights.stat().st_mtime_ns) == before


def loader(n: int = 12, batch_size: int = 4) -> TensorLoader:
    images = torch.arange(n * 3 * 8 * 8, dtype=torch.float32).reshape(n, 3, 8, 8).remainder(256).to(torch.uint8)
    data = ImageTensors(images, torch.arange(n) % 3, ("a", "b", "c"))
    return TensorLoader(
        data,
        batch_size=batch_size,
        normalization=NORMALIZATIONS["none"],
        augmentation=build_augmentation("standard"),
        shuffle=True,
        drop_last=True,
        seed=3,
    )


def test_each_process_takes_its_share_of_the_same_batches():
    one = loader()
    shares = [one.for_rank(rank, 2) for rank in (0, 1)]
    labels = [torch.cat([y for _, y in share.epoch(1)]) for share in shares]
    together = torch.cat([y for _, y in one.epoch(1)])
    # batch by batch, rank 0 takes images 0, 2 and rank 1 images 1, 3 of the one process's batch
    assert torch.equal(torch.stack([labels[0].view(-1, 2), labels[1].view(-1, 2)], 2).flatten(), together)
    assert len(shares[0]) == len(one) == 3
    assert one.for_rank(0, 1) is one


def test_a_batch_that_cannot_be_shared_equally_is_refused():
    with pytest.raises(SynthgapError, match="a batch of 4 images cannot be split equally into 3 shares"):
        loader().for_rank(0, 3)


def test_bad_data_is_told_once_before_any_process_starts(tmp_path):
    done = subprocess.run(train(tmp_path / "nowhere", tmp_path / "out", 1), env=env(), capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("synthgap: error:") == 1 and "Traceback" not in done.stderr


def test_sync_bn_swaps_back_to_the_same_batchnorm_parameters():
    """SyncBatchNorm only runs on GPUs; what the CPU can check is the swap: the trained student leaves `fit` with
    BatchNorm2d layers holding the very tensors SyncBatchNorm trained, so it saves and transfers as before."""
    from synthgap.models import ModelConfig, build_model
    from synthgap.train.distributed import plain_batchnorm

    model = build_model(ModelConfig(width=0.125, num_classes=3)).eval()
    before = dict(model.state_dict(keep_vars=True))
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    plain = plain_batchnorm(synced)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in plain.modules())
    after = plain.state_dict(keep_vars=True)
    assert list(after) == list(before) and all(after[key] is before[key] for key in before)
    assert not plain.training and all(not m.training for m in plain.modules())
    assert torch.equal(plain(x), expected)


@pytest.mark.parametrize(("name", "has"), [("vit_tiny", "no BatchNorm layers"), ("resnet18+bn1d", "BatchNorm1d")])
def test_sync_bn_acts_on_batchnorm2d_layers_only(name, has):
    """What `plain_batchnorm` swaps back is a BatchNorm2d: a model with none, or with another BatchNorm, is refused."""
    from synthgap.models import ModelConfig, build_model
    from synthgap.train.distributed import World, wrap

    model = build_model(ModelConfig(name=name.split("+")[0], width=0.25, num_classes=3))
    if name.endswith("bn1d"):
        model.fc = torch.nn.Sequential(torch.nn.BatchNorm1d(model.fc.in_features), model.fc)
    with pytest.raises(SynthgapError, match=f"synchronises BatchNorm2d layers; this model has .*{has}"):
        wrap(model, World(0, 2, 0), torch.device("cpu"), sync_bn=True)


def test_sync_bn_without_processes_to_share_with_is_refused(cifake_root, tmp_path):
    """One process, or processes on the CPU (torch's SyncBatchNorm needs GPUs): one line each, nothing trained."""
    for nproc, message in (("1", "it needs --nproc 2 or more"), ("2", "recipe.sync_bn needs GPUs")):
        command = [*train(cifake_root, tmp_path / "out", 1), "--sync-bn"]
        command[command.index("--nproc") + 1] = nproc
        done = subprocess.run(command, env=env(), capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.count("synthgap: error:") == 1, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_a_spec_cannot_ask_for_sync_bn(cifake_root, tmp_path, capsys):
    from tests.test_bad_inputs import assert_run_and_dry_run_reject, write_spec

    spec = write_spec(tmp_path, cifake_root, {"recipe.sync_bn": True})
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", f"{spec}: recipe: sync_bn needs a run on several")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_machines_of_one_process_each_train_the_run_of_two_processes(cifake_root, tmp_path):
    """`--nnodes 2`: each machine runs the same command; their processes meet at the endpoint and train one run of
    2 processes, recorded once by process 0 and read back by both launchers: the record of `--nproc 2` on one."""
    one_machine = subprocess.run(train(cifake_root, tmp_path / "one", 2), env=env(), capture_output=True, text=True)
    assert one_machine.returncode == 0, one_machine.stderr
    command = train(cifake_root, tmp_path / "two", 2)
    command[command.index("--nproc") + 1] = "1"
    command += ["--nnodes", "2", "--rdzv-endpoint", f"localhost:{free_port()}"]
    machines = [subprocess.Popen(command, env=env(), stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for machine in machines:
        _, stderr = machine.communicate(timeout=300)
        assert machine.returncode == 0, stderr
    assert numbers(tmp_path / "two") == numbers(tmp_path / "one")
    assert not list(tmp_path.rglob("*.launch.*.yaml"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--nnodes", "2"], "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
        (["--nnodes", "2", "--rdzv-endpoint", "node01"], "--rdzv-endpoint must be HOST:PORT"),
        (["--nnodes", "0"], "--nnodes must be at least 1"),
    ],
)
def test_several_machines_need_a_place_to_meet(cifake_root, tmp_path, options, message):
    done = subprocess.run(
        [*train(cifake_root, tmp_path / "out", 1), *options], env=env(), capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.count("synthgap: error:") == 1, done.stderr
    assert message in done.stderr


def test_machines_that_never_meet_are_one_error_line(monkeypatch):
    from torch.distributed.elastic.rendezvous.api import RendezvousTimeoutError
    from torch.distributed.launcher import api as launcher

    def never_met(config, entrypoint):
        def start(*args):
            raise RendezvousTimeoutError("The node 'n2' has not joined in time.\nmore lines")

        return start

    monkeypatch.setattr(launcher, "elastic_launch", never_met)
    with pytest.raises(SynthgapError, match=r"^the 2 machine\(s\) of the run did not all meet at n1:29400: The node"):
        launch(1, ["--help"], Nodes(2, "n1:29400"))
