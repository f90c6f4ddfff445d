"""Shared helpers for the benchmarks: timing and the CIFAKE images they run on."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthgap.data.cache import load_images
from synthgap.data.sources import open_source
from synthgap.data.tensors import ImageTensors


def best_rate(work: Callable[[], int], repeats: int = 3) -> float:
    """Items per second of the fastest of `repeats` calls (`work` returns how many items it processed).

    The fastest repeat is the least disturbed by other load on a shared machine.
    """
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = work()
        rates.append(items / (time.perf_counter() - start))
    return max(rates)


def step_rate(step: Callable[[Any, Any], object], inputs: Any, labels: Any, steps: int) -> float:
    """Images per second of `steps` calls of a training step on one batch."""
    start = time.perf_counter()
    for _ in range(steps):
        step(inputs, labels)
    return steps * len(inputs) / (time.perf_counter() - start)


def interleaved(a: Callable[[], float], b: Callable[[], float], pairs: int) -> tuple[float, float, list[float]]:
    """The median rates of `a` and `b` timed in alternation (a, b, a, b, ...), so that other load on the machine
    falls on both, and each pair's ratio b / a."""
    a_rates, b_rates = [], []
    for _ in range(pairs):
        a_rates.append(a())
        b_rates.append(b())
    ratios = [y / x for x, y in zip(a_rates, b_rates, strict=True)]
    return statistics.median(a_rates), statistics.median(b_rates), ratios


def cifake_train_real(resolution: int = 32) -> ImageTensors:
    if not os.environ.get("SYNTHGAP_DATA_ROOT"):
        raise SystemExit("benchmarks need CIFAKE: set SYNTHGAP_DATA_ROOT (make bench defaults it to ../shared/data)")
    return load_images(open_source("cifake:real", "train"), resolution, progress=False)


def cifake_real_folder() -> Path:
    return open_source("cifake:real", "train").root


def report(name: str, value: float, unit: str = "") -> None:
    print(f"{name}: {value:.2f}{(' ' + unit) if unit else ''}", flush=True)
