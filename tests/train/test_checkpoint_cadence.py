"""How often `fit` writes its training state: at most every `checkpoint_minutes` of wall time (0: every epoch).

No test here waits for a clock: writes are counted by patching `TrainState.save`, and where the time between epochs
matters it comes from a fake clock that moves one minute per epoch.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from synthgap.train import loop
from synthgap.train.loop import CheckpointClock
from synthgap.train.state import STATE_FILE, TrainState
from tests.train.test_fit import RECIPE, colour_classes, loaders, tiny_model
from tests.train.test_resume import Preempted, run, same_weights, without_seconds


@pytest.fixture
def saves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The epochs after which a state was written, in order."""
    written: list[int] = []
    real_save = TrainState.save

    def save(self, parts, history):
        real_save(self, parts, history)
        written.append(torch.load(self.path, weights_only=True)["epoch"])

    monkeypatch.setattr(TrainState, "save", save)
    return written


class FakeClock:
    """Seconds that move only when told: one minute per epoch (see `minute_per_epoch`)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def minute_per_epoch(monkeypatch: pytest.MonkeyPatch, clock: FakeClock, stop_in: int | None = None) -> None:
    """Each epoch of `fit` takes one minute of `clock`; with `stop_in`, `fit` stops inside that epoch (1-based) after
    one step, as a kill would."""
    real = loop.train_epoch

    def train_epoch(step, scheduler, loader, index, bar, **kwargs):
        if stop_in is not None and index + 1 == stop_in:
            images, labels = next(iter(loader.epoch(index)))
            step(images, labels)  # the weights change: the resumed run must not keep this part of an epoch
            raise Preempted
        clock.now += 60.0
        return real(step, scheduler, loader, index, bar, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", train_epoch)
    monkeypatch.setattr(loop, "CheckpointClock", functools.partial(CheckpointClock, clock=clock))


FOUR_EPOCHS = RECIPE.model_copy(update={"epochs": 4, "eval_every": 1})
FIVE_EPOCHS = RECIPE.model_copy(update={"epochs": 5, "eval_every": 1})


def test_a_cadence_of_minutes_writes_no_state_in_a_run_shorter_than_that(tmp_path, saves):
    """A run of several epochs, all within the cadence, writes no state at all: none between its epochs (the
    cadence has not passed) and none after the last (the run is complete: `fit` would delete it at once, and the
    finished model is what the caller saves)."""
    model, result = run(tmp_path / "state", recipe=FOUR_EPOCHS, checkpoint_minutes=5)
    assert saves == []
    assert len(result.history) == 4
    assert not (tmp_path / "state" / STATE_FILE).exists()
    reference, _ = run(recipe=FOUR_EPOCHS)
    assert same_weights(model, reference)  # whether and when states are written changes no number


def test_the_default_cadence_is_ten_minutes(tmp_path, saves):
    assert loop.CHECKPOINT_MINUTES == 10.0
    train, test = loaders(colour_classes())
    loop.fit(tiny_model(), train, test, FOUR_EPOCHS, progress=False, state_dir=tmp_path, state_token="t")
    assert saves == []


def test_a_cadence_of_zero_writes_after_every_epoch_but_the_last(tmp_path, saves):
    run(tmp_path / "state", recipe=FOUR_EPOCHS, checkpoint_minutes=0)
    assert saves == [1, 2, 3]
    assert not (tmp_path / "state" / STATE_FILE).exists()  # removed once the run is complete


def test_the_cadence_counts_wall_time_since_the_last_write(tmp_path, monkeypatch, saves):
    minute_per_epoch(monkeypatch, FakeClock())
    run(tmp_path / "state", recipe=FIVE_EPOCHS, checkpoint_minutes=1.5)
    assert saves == [2, 4]  # 2 minutes after the start, then 2 after that write; never after the last epoch


def test_the_cadence_and_checkpoint_every_both_apply(tmp_path, monkeypatch, saves):
    minute_per_epoch(monkeypatch, FakeClock())
    run(tmp_path / "state", recipe=FIVE_EPOCHS, checkpoint_minutes=0.5, checkpoint_every=3)
    assert saves == [3]


def test_a_run_stopped_after_unsaved_epochs_resumes_from_the_last_write_to_identical_weights(tmp_path, monkeypatch):
    """Epochs finished after the last write are trained again, and the result is the uninterrupted one, bit for
    bit: written at epoch 2, stopped inside epoch 4, resumed from epoch 2."""
    reference, expected = run(recipe=FIVE_EPOCHS)
    with monkeypatch.context() as patch:
        minute_per_epoch(patch, FakeClock(), stop_in=4)
        with pytest.raises(Preempted):
            run(tmp_path / "state", recipe=FIVE_EPOCHS, checkpoint_minutes=1.5)
    state_file = tmp_path / "state" / STATE_FILE
    assert torch.load(state_file, weights_only=True)["epoch"] == 2  # epoch 3 finished, but was not written

    model, result = run(tmp_path / "state", recipe=FIVE_EPOCHS, model=tiny_model(seed=5), checkpoint_minutes=1.5)
    assert result.resumed_epochs == 2
    assert same_weights(model, reference)
    assert without_seconds(result.history) == without_seconds(expected.history)
    assert (result.top1, result.top5) == (expected.top1, expected.top5)
    assert not state_file.exists()


def test_the_clock_is_due_once_its_minutes_have_passed_since_the_last_save():
    clock = FakeClock()
    checkpoints = CheckpointClock(2, clock=clock)
    clock.now = 119.0
    assert not checkpoints.due()
    clock.now = 120.0
    assert checkpoints.due()
    checkpoints.saved()
    clock.now = 200.0
    assert not checkpoints.due()
    clock.now = 240.0
    assert checkpoints.due()


def test_a_clock_of_zero_minutes_is_always_due():
    checkpoints = CheckpointClock(0, clock=FakeClock())
    assert checkpoints.due()
    checkpoints.saved()
    assert checkpoints.due()


@pytest.mark.parametrize("minutes", [-1.0, math.nan])
def test_a_negative_cadence_is_refused(tmp_path, minutes):
    with pytest.raises(ValueError, match="checkpoint_minutes must be 0 or more"):
        run(tmp_path / "state", checkpoint_minutes=minutes)
