"""Progress reports that suit where they go: a redrawn tqdm bar on a terminal, plain log lines anywhere else.

A bar redrawn into a log file becomes hundreds of lines of carriage returns; `progress_bar` returns a tqdm bar only
when stderr is a terminal and otherwise an object with the same small interface that writes a few plain lines:

    decode cifake:real: 0/1300 img
    decode cifake:real: 130/1300 img (10%, 4 s, 32.5 img/s, eta 36 s)
    ...
    decode cifake:real: done 1300/1300 img in 40 s

A line per 10 % of the total, or per minute when that comes first. A training bar (`epochs=` given) writes one line
per epoch instead (`progress.epoch_done(row)` from the training loop):

    baseline-real-s0: epoch 3/15 train_loss 1.234 top1 45.6 (12 s)

The environment variable SYNTHGAP_PROGRESS=bar|lines|off overrides the choice (`auto`, the default, picks by
terminal); `enabled=False` (the CLI's --quiet) is always silent.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TextIO, TypeVar

from synthgap.errors import SynthgapError

ENV = "SYNTHGAP_PROGRESS"
MODES = ("auto", "bar", "lines", "off")
LINE_PARTS = 10  # a line per tenth of the total...
LINE_SECONDS = 60.0  # ...or per minute, whichever comes first
EPOCH_FIELDS = {"train_loss": "{:.3f}", "top1": "{:.1f}"}  # what an epoch line shows, when the row has it
T = TypeVar("T")


class Progress:
    """The interface every progress object has; this base class reports nothing (`enabled=False`, `off`)."""

    def update(self, n: int = 1) -> None:
        """`n` more units done."""

    def set_postfix(self, values: Mapping[str, Any]) -> None:
        """Short `key=value` facts shown beside the count (e.g. the last loss)."""

    def set_postfix_str(self, text: str) -> None:
        """A short text shown beside the count (e.g. the run now in progress)."""

    def epoch_done(self, row: Mapping[str, Any]) -> None:
        """A training epoch finished; `row` holds its `epoch` and metrics (train_loss, top1, seconds, ...)."""

    def close(self) -> None:
        """The work ended (finished or not)."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """What an epoch's line shows: its EPOCH_FIELDS, and the learning curve's top-1 on the test subset when the
    whole test set was not evaluated that epoch."""
    metrics = {key: row[key] for key in EPOCH_FIELDS if key in row}
    if "top1" not in row and "curve_top1" in row:
        metrics["top1_subset"] = row["curve_top1"]
    return metrics


def progress_mode(stream: TextIO | None = None) -> str:
    """`bar`, `lines` or `off`: SYNTHGAP_PROGRESS when set (and not `auto`), else `bar` on a terminal, `lines`
    elsewhere (a file, a pipe, a CI log)."""
    mode = os.environ.get(ENV, "").strip().lower() or "auto"
    if mode not in MODES:
        raise SynthgapError(f"{ENV}={os.environ[ENV]!r} is not one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    stream = stream or sys.stderr
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "lines"


def progress_bar(
    total: int | None,
    *,
    desc: str,
    unit: str,
    enabled: bool = True,
    initial: int = 0,
    epochs: int | None = None,
    leave: bool = True,
    stream: TextIO | None = None,
) -> Progress:
    """A progress report on stderr (or `stream`) for `total` units (None: unknown) of which `initial` are done.

    `epochs`: this counts the steps of a training run of that many epochs; plain lines then come one per epoch
    (`epoch_done`) instead of one per 10 %. `leave=False` clears a terminal bar once it closes (a log keeps its last
    line).
    """
    stream = stream or sys.stderr
    mode = progress_mode(stream) if enabled else "off"
    if mode == "off":
        return Progress()
    if mode == "bar":
        return BarProgress(total, desc=desc, unit=unit, initial=initial, leave=leave, stream=stream)
    return LineProgress(total, desc=desc, unit=unit, initial=initial, epochs=epochs, stream=stream)


def track(
    items: Iterable[T],
    *,
    desc: str,
    unit: str,
    total: int | None = None,
    enabled: bool = True,
    leave: bool = True,
) -> Iterator[T]:
    """`items`, one progress unit each: `for images, _ in track(loader, desc="test pass", unit="batch"): ...`.
    `total` defaults to `len(items)` where there is one."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with progress_bar(total, desc=desc, unit=unit, enabled=enabled, leave=leave) as progress:
        for item in items:
            yield item
            progress.update(1)


class BarProgress(Progress):
    """A tqdm bar (a terminal)."""

    def __init__(self, total: int | None, *, desc: str, unit: str, initial: int, leave: bool, stream: TextIO) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, initial=initial, desc=desc, unit=unit, leave=leave, file=stream, dynamic_ncols=True
        )

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_postfix(self, values: Mapping[str, Any]) -> None:
        self.bar.set_postfix(dict(values))

    def set_postfix_str(self, text: str) -> None:
        self.bar.set_postfix_str(text)

    def epoch_done(self, row: Mapping[str, Any]) -> None:
        self.bar.set_postfix({key: f"{value:.3g}" for key, value in epoch_metrics(row).items()})

    def close(self) -> None:
        self.bar.close()


class LineProgress(Progress):
    """Plain lines (a log file, a pipe): a start line, a line per 10 % / per minute or per epoch, an end line."""

    def __init__(
        self,
        total: int | None,
        *,
        desc: str,
        unit: str,
        initial: int = 0,
        epochs: int | None = None,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit, self.epochs = total, desc, unit, epochs
        self.n = self.initial = initial
        self.stream, self.clock = stream, clock
        self.start = self.last_line = clock()
        self.next_mark = self._mark_after(initial)
        self.postfix = ""
        self.closed = False
        resumed = ""
        if epochs and total and initial:
            resumed = f" (resumed after epoch {initial * epochs // total}/{epochs})"
        self._write(f"{desc}: {self._count()}{resumed}")

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.epochs is not None or (self.total and self.n >= self.total):  # epoch lines / the end line instead
            return
        now = self.clock()
        if self.n >= self.next_mark or now - self.last_line >= LINE_SECONDS:
            self._write(f"{self.desc}: {self._count()} ({self._rates(now)}){self.postfix}")
            self.last_line = now
            self.next_mark = self._mark_after(self.n)

    def set_postfix(self, values: Mapping[str, Any]) -> None:
        self.set_postfix_str(", ".join(f"{key}={value}" for key, value in values.items()))

    def set_postfix_str(self, text: str) -> None:
        self.postfix = f" | {text}" if text else ""

    def epoch_done(self, row: Mapping[str, Any]) -> None:
        of = f"/{self.epochs}" if self.epochs else ""
        parts = [f"{self.desc}: epoch {row['epoch']}{of}"]
        parts += [f"{key} {EPOCH_FIELDS.get(key, '{:.1f}').format(value)}" for key, value in epoch_metrics(row).items()]
        seconds = row.get("seconds", self.clock() - self.start)
        self._write(" ".join(parts) + f" ({format_seconds(seconds)})")
        self.last_line = self.clock()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        took = format_seconds(self.clock() - self.start)
        if not self.total:  # finished or not, nobody said how much there was
            self._write(f"{self.desc}: {self._count()} in {took}")
        elif self.n >= self.total:
            self._write(f"{self.desc}: done {self._count()} in {took}")
        else:
            self._write(f"{self.desc}: stopped at {self._count()} after {took}")

    def _count(self) -> str:
        return f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"

    def _rates(self, now: float) -> str:
        elapsed = now - self.start
        parts = [f"{100 * self.n // self.total}%"] if self.total else []  # floor: 100% only when done
        parts.append(format_seconds(elapsed))
        done = self.n - self.initial
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            parts.append(f"{rate:.0f} {self.unit}/s" if rate >= 100 else f"{rate:.3g} {self.unit}/s")
            if self.total:
                parts.append(f"eta {format_seconds((self.total - self.n) / rate)}")
        return ", ".join(parts)

    def _mark_after(self, n: int) -> float:
        """The next count at which a 10 % line is due: the first ceil(k · total / 10) above `n`, in integers so that
        no rounding skips a mark (infinite without a total: then only the minute rule applies)."""
        if not self.total:
            return math.inf
        k = n * LINE_PARTS // self.total + 1
        return -(-k * self.total // LINE_PARTS)

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def format_seconds(seconds: float) -> str:
    """`12 s`, `3 min 05 s`, `2 h 07 min`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
