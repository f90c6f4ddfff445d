"""Progress reports: a tqdm bar on a terminal, a few plain lines elsewhere, nothing when disabled or `off`."""

from __future__ import annotations

import io

import pytest

from synthgap.errors import SynthgapError
from synthgap.progress import ENV, BarProgress, LineProgress, Progress, format_seconds, progress_bar, track


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_log_gets_a_line_per_tenth_plus_start_and_end():
    stream, clock = io.StringIO(), FakeClock()
    progress = LineProgress(30, desc="decode real", unit="img", stream=stream, clock=clock)
    for _ in range(30):  # 3 per tenth: 30 * 0.1 is 3.0000000000000004 in floats, the marks must still be hit
        clock.now += 1
        progress.update(1)
    progress.close()
    out = lines(stream)
    assert out[0] == "decode real: 0/30 img"
    assert [line.split(" (")[0] for line in out[1:-1]] == [f"decode real: {n}/30 img" for n in range(3, 30, 3)]
    assert out[1] == "decode real: 3/30 img (10%, 3 s, 1 img/s, eta 27 s)"
    assert out[-1] == "decode real: done 30/30 img in 30 s"


def test_a_jump_over_several_tenths_writes_one_line():
    stream = io.StringIO()
    progress = LineProgress(100, desc="d", unit="img", stream=stream, clock=FakeClock())
    progress.update(35)
    progress.update(1)  # 36: the next mark is 40
    progress.update(4)
    assert [line.split(" (")[0] for line in lines(stream)] == ["d: 0/100 img", "d: 35/100 img", "d: 40/100 img"]


def test_a_fast_job_shows_its_rate_without_exponent():
    stream, clock = io.StringIO(), FakeClock()
    progress = LineProgress(100_000, desc="decode", unit="img", stream=stream, clock=clock)
    clock.now += 4
    progress.update(10_000)
    assert lines(stream)[1] == "decode: 10000/100000 img (10%, 4 s, 2500 img/s, eta 36 s)"


def test_a_slow_job_gets_a_line_a_minute():
    stream, clock = io.StringIO(), FakeClock()
    progress = LineProgress(1000, desc="generate 0/1", unit="img", stream=stream, clock=clock)
    for _ in range(6):  # one image every 25 s: far from 10 %, so only the minute rule writes
        clock.now += 25
        progress.update(1)
    assert lines(stream)[1:] == [
        "generate 0/1: 3/1000 img (0%, 1 min 15 s, 0.04 img/s, eta 6 h 55 min)",
        "generate 0/1: 6/1000 img (0%, 2 min 30 s, 0.04 img/s, eta 6 h 54 min)",
    ]


def test_postfix_resumed_count_and_a_stop_before_the_end():
    stream = io.StringIO()
    with LineProgress(10, desc="tiny", unit="run", initial=4, stream=stream, clock=FakeClock()) as progress:
        progress.set_postfix_str("baseline-real-s0")
        progress.update(1)
    assert lines(stream) == [
        "tiny: 4/10 run",
        "tiny: 5/10 run (50%, 0 s) | baseline-real-s0",
        "tiny: stopped at 5/10 run after 0 s",
    ]


def test_training_lines_come_per_epoch_not_per_tenth():
    stream, clock = io.StringIO(), FakeClock()
    progress = LineProgress(40, desc="baseline-real-s0", unit="step", epochs=4, stream=stream, clock=clock)
    for epoch in range(1, 5):
        progress.update(10)
        row = {"epoch": epoch, "train_loss": 1.23449, "lr": 0.1, "seconds": 3.0 * epoch}
        progress.epoch_done(row if epoch < 4 else {**row, "top1": 45.64, "top5": 80.0})
    clock.now += 12
    progress.close()
    assert lines(stream) == [
        "baseline-real-s0: 0/40 step",
        "baseline-real-s0: epoch 1/4 train_loss 1.234 (3 s)",
        "baseline-real-s0: epoch 2/4 train_loss 1.234 (6 s)",
        "baseline-real-s0: epoch 3/4 train_loss 1.234 (9 s)",
        "baseline-real-s0: epoch 4/4 train_loss 1.234 top1 45.6 (12 s)",
        "baseline-real-s0: done 40/40 step in 12 s",
    ]


def test_track_counts_the_items_of_an_iterable(capsys):
    assert list(track([1, 2, 3], desc="test pass", unit="batch")) == [1, 2, 3]
    assert list(track(iter("ab"), desc="stream", unit="item")) == ["a", "b"]  # no len: counts without a total
    assert [line.split(" (")[0] for line in capsys.readouterr().err.splitlines()] == [
        "test pass: 0/3 batch",
        "test pass: 1/3 batch",
        "test pass: 2/3 batch",
        "test pass: done 3/3 batch in 0 s",
        "stream: 0 item",
        "stream: 2 item in 0 s",
    ]


def test_a_resumed_training_says_where_it_resumed():
    stream = io.StringIO()
    LineProgress(40, desc="run", unit="step", initial=30, epochs=4, stream=stream, clock=FakeClock())
    assert lines(stream) == ["run: 30/40 step (resumed after epoch 3/4)"]


def test_the_choice_follows_the_stream_and_the_environment(monkeypatch):
    assert isinstance(progress_bar(5, desc="d", unit="img", stream=io.StringIO()), LineProgress)
    terminal = progress_bar(5, desc="d", unit="img", stream=Terminal())
    assert isinstance(terminal, BarProgress)
    terminal.close()
    assert type(progress_bar(5, desc="d", unit="img", enabled=False, stream=Terminal())) is Progress
    monkeypatch.setenv(ENV, "lines")
    assert isinstance(progress_bar(5, desc="d", unit="img", stream=Terminal()), LineProgress)
    monkeypatch.setenv(ENV, "BAR")
    bar = progress_bar(5, desc="d", unit="img", stream=io.StringIO())
    assert isinstance(bar, BarProgress)
    bar.close()
    monkeypatch.setenv(ENV, "off")
    stream = io.StringIO()
    with progress_bar(5, desc="d", unit="img", stream=stream) as silent:
        silent.update(5)
        silent.set_postfix({"loss": 1})
        silent.epoch_done({"epoch": 1})
    assert type(silent) is Progress and stream.getvalue() == ""
    monkeypatch.setenv(ENV, "auto")
    assert isinstance(progress_bar(5, desc="d", unit="img", stream=io.StringIO()), LineProgress)


def test_an_unknown_mode_is_an_error(monkeypatch):
    monkeypatch.setenv(ENV, "fancy")
    with pytest.raises(SynthgapError, match="SYNTHGAP_PROGRESS='fancy' is not one of auto, bar, lines, off"):
        progress_bar(5, desc="d", unit="img", stream=io.StringIO())


def test_a_bar_mode_epoch_sets_the_postfix():
    stream = Terminal()
    with progress_bar(4, desc="fit", unit="step", epochs=2, stream=stream) as bar:
        bar.update(2)
        bar.epoch_done({"epoch": 1, "train_loss": 0.51234, "lr": 0.1})
    assert "train_loss=0.512" in stream.getvalue() and "lr=" not in stream.getvalue()


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (59.4, "59 s"), (65, "1 min 05 s"), (7300, "2 h 01 min")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
