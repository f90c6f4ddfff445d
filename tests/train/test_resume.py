"""Preemption-safe training: `fit(..., state_dir=...)` saves its state between epochs and continues from it."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from synthgap.errors import DivergenceError
from synthgap.io import current_umask
from synthgap.models import ModelConfig, build_model
from synthgap.train import loop
from synthgap.train.loop import fit, seed_everything
from synthgap.train.state import STATE_FILE, TrainingParts, TrainState
from tests.train import resume_worker
from tests.train.test_fit import RECIPE, colour_classes, loaders, tiny_model

REPO = Path(__file__).resolve().parents[2]
THREE_EPOCHS = RECIPE.model_copy(update={"epochs": 3, "eval_every": 1})


class Preempted(Exception):
    """Stands in for a kill: raised inside an epoch, it leaves the saved state behind as a kill would."""


def preempt_in_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Make `fit` stop inside epoch `epoch` (1-based), after that epoch's first step."""
    real = loop.train_epoch

    def train_epoch(step, scheduler, loader, index, bar, **kwargs):
        if index + 1 == epoch:
            images, labels = next(iter(loader.epoch(index)))
            step(images, labels)  # changes the weights: the resumed run must not keep this half epoch
            raise Preempted
        return real(step, scheduler, loader, index, bar, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", train_epoch)


def run(state_dir: Path | None = None, token: str | None = "t", recipe=THREE_EPOCHS, model=None, **options):
    options.setdefault("checkpoint_minutes", 0)  # a state after every epoch (the default waits minutes between saves)
    train, test = loaders(colour_classes())
    model = model or tiny_model()
    result = fit(model, train, test, recipe, progress=False, state_dir=state_dir, state_token=token, **options)
    return model, result


def same_weights(a: torch.nn.Module | dict, b: torch.nn.Module | dict) -> bool:
    a = a if isinstance(a, dict) else a.state_dict()
    b = b if isinstance(b, dict) else b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def interrupted_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, epoch: int = 3) -> Path:
    """A state folder holding the state after epoch `epoch - 1` of a run stopped inside epoch `epoch`."""
    with monkeypatch.context() as patch:
        preempt_in_epoch(patch, epoch)
        with pytest.raises(Preempted):
            run(tmp_path / "state")
    return tmp_path / "state"


def test_a_run_stopped_between_saves_resumes_to_identical_weights(tmp_path, monkeypatch):
    reference, expected = run()
    state_dir = interrupted_state(tmp_path, monkeypatch, epoch=3)
    state_file = state_dir / STATE_FILE
    assert state_file.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert torch.load(state_file, weights_only=True)["epoch"] == 2  # plain tensors and containers only

    model, result = run(state_dir, model=tiny_model(seed=5))  # other initial weights: all of them come from the state
    assert result.resumed_epochs == 2
    assert same_weights(model, reference)
    assert without_seconds(result.history) == without_seconds(expected.history)
    assert (result.top1, result.top5) == (expected.top1, expected.top5)
    assert not state_file.exists() and not list(state_dir.iterdir())  # removed once complete, no temp files


def test_resumed_run_rewrites_summary_csv_with_the_restored_epochs(tmp_path, monkeypatch):
    state_dir = interrupted_state(tmp_path, monkeypatch, epoch=3)
    run(state_dir, out_dir=tmp_path / "run")
    rows = (tmp_path / "run" / "summary.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["epoch", "1", "2", "3"]


def test_a_state_with_another_token_is_ignored(tmp_path, monkeypatch, caplog):
    reference, _ = run()
    state_dir = interrupted_state(tmp_path, monkeypatch, epoch=3)
    with caplog.at_level(logging.WARNING, logger="synthgap"):
        model, result = run(state_dir, token="other")
    assert result.resumed_epochs == 0 and len(result.history) == 3
    assert same_weights(model, reference)
    assert not caplog.records  # another training's state is replaced without a word
    assert not (state_dir / STATE_FILE).exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupt_state_gives_one_warning_and_a_fresh_start(tmp_path, monkeypatch, caplog, damage):
    reference, _ = run()
    state_file = interrupted_state(tmp_path, monkeypatch, epoch=3) / STATE_FILE
    data = state_file.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": b"\x00not a zip" * 50, "empty": b""}
    state_file.write_bytes(damaged[damage])
    with caplog.at_level(logging.WARNING, logger="synthgap"):
        model, result = run(state_file.parent)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"synthgap: warning: training state {state_file} cannot be read"
    ]
    assert "\n" not in caplog.records[0].getMessage()
    assert result.resumed_epochs == 0 and same_weights(model, reference)
    assert not state_file.exists()


def test_an_unusable_state_is_deleted_when_found(tmp_path, caplog):
    """So a run killed again before its first save does not warn about the same file once more."""
    (tmp_path / STATE_FILE).write_bytes(b"damaged")
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    parts = TrainingParts(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0), None, "cpu")
    state = TrainState(tmp_path, "t", epochs=3, steps_per_epoch=4)
    with caplog.at_level(logging.WARNING, logger="synthgap"):
        assert state.restore(parts) is None
        assert state.restore(parts) is None
    assert len(caplog.records) == 1 and "training starts afresh" in caplog.records[0].getMessage()
    assert not (tmp_path / STATE_FILE).exists()


def test_a_state_that_does_not_fit_the_model_is_not_used(tmp_path, monkeypatch, caplog):
    state_dir = interrupted_state(tmp_path, monkeypatch, epoch=3)
    seed_everything(0)
    wider = build_model(ModelConfig(width=0.25, num_classes=2))
    with caplog.at_level(logging.WARNING, logger="synthgap"):
        _, result = run(state_dir, model=wider)
    assert result.resumed_epochs == 0
    (record,) = caplog.records
    assert record.getMessage().startswith(f"synthgap: warning: training state {state_dir / STATE_FILE} is not used: ")
    assert "conv1.weight is (8, 3, 3, 3) torch.float32 there, (16, 3, 3, 3) torch.float32 here" in record.getMessage()


def test_a_state_of_other_epochs_is_not_used(tmp_path, monkeypatch, caplog):
    state_dir = interrupted_state(tmp_path, monkeypatch, epoch=3)
    with caplog.at_level(logging.WARNING, logger="synthgap"):
        _, result = run(state_dir, recipe=THREE_EPOCHS.model_copy(update={"epochs": 4}))
    assert result.resumed_epochs == 0
    assert "it was saved for 3 epochs of 4 steps, this training has 4 of 4" in caplog.records[0].getMessage()


@pytest.mark.parametrize(("epochs", "saved_after"), [(5, [2, 4]), (4, [2]), (1, [])])
def test_checkpoint_every_saves_after_every_kth_epoch_but_the_last(tmp_path, monkeypatch, epochs, saved_after):
    saves = []
    real_save = TrainState.save

    def save(self, parts, history):
        real_save(self, parts, history)
        saves.append(torch.load(self.path, weights_only=True)["epoch"])

    monkeypatch.setattr(TrainState, "save", save)
    run(tmp_path / "state", recipe=RECIPE.model_copy(update={"epochs": epochs}), checkpoint_every=2)
    assert saves == saved_after
    assert not (tmp_path / "state" / STATE_FILE).exists()


def test_checkpoint_every_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every must be a positive number of epochs, got 0"):
        run(tmp_path / "state", checkpoint_every=0)


def test_a_diverged_run_leaves_no_state_to_resume(tmp_path, monkeypatch):
    state_dir = interrupted_state(tmp_path, monkeypatch, epoch=3)
    real_call = loop.TrainStep.__call__

    def nan_loss(self, images, labels):
        return torch.full_like(real_call(self, images, labels), math.nan)

    monkeypatch.setattr(loop.TrainStep, "__call__", nan_loss)
    with pytest.raises(DivergenceError, match="at epoch 3, step 1 "):
        run(state_dir)  # resumes after epoch 2, then diverges
    assert not (state_dir / STATE_FILE).exists()


def _worker(folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tests.train.resume_worker", str(folder), *extra]


def _saved_epoch(state_file: Path) -> int:
    return torch.load(state_file, weights_only=True)["epoch"] if state_file.exists() else 0


@pytest.mark.slow
def test_killed_at_random_moments_resumes_to_bit_identical_weights(tmp_path):
    """SIGKILL a training process at random moments, at least three times and until a saved state is left, run it to
    the end, and compare with an uninterrupted run (made in this process: the same one-thread CPU arithmetic)."""
    reference = tmp_path / "reference"
    start = time.perf_counter()
    resume_worker.main(reference, with_state=False)
    per_epoch = (time.perf_counter() - start) / resume_worker.EPOCHS

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    state_file = killed / "state" / STATE_FILE
    rng = random.Random(2024)
    kills = []  # (epochs saved when the process started, when it was killed)
    for _ in range(8):
        before = _saved_epoch(state_file)
        (killed / "started").unlink(missing_ok=True)
        process = subprocess.Popen(_worker(killed), cwd=REPO, env=env, stderr=subprocess.DEVNULL)
        while process.poll() is None and not (killed / "started").exists():  # imported, about to train
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.2 * per_epoch * (resume_worker.EPOCHS - before)))  # within what is left
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills.append((before, _saved_epoch(state_file)))
        if len(kills) >= 3 and _saved_epoch(state_file) > 0:
            break
    left = _saved_epoch(state_file)
    assert len(kills) >= 3 and left > 0, f"kills (saved epochs at start, at kill): {kills}"
    subprocess.run(_worker(killed), cwd=REPO, env=env, check=True)

    finished = json.loads((killed / "result.json").read_text())
    expected = json.loads((reference / "result.json").read_text())
    assert finished["resumed_epochs"] == left
    assert without_seconds(finished["history"]) == without_seconds(expected["history"])
    weights = torch.load(killed / "weights.pt", weights_only=True)
    assert same_weights(weights, torch.load(reference / "weights.pt", weights_only=True))
    assert not list((killed / "state").iterdir())  # neither the state nor a temp file of a killed save is left
