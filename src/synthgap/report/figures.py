"""Report figures drawn with matplotlib's object API (no pyplot state, no display: PNG via the Agg canvas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from synthgap.report.fits import LogFit
from synthgap.report.palette import (
    GREEN,
    ORANGE,
    PURPLE,
    R_COLOR,
    S_COLOR,
    SERIES_COLORS,
    SKY,
    seeds_phrase,
    spread_note,
)
from synthgap.report.tables import LEGACY_NUM_LAYERS, Summary
from synthgap.report.text import figure_text, fraction_label

_CURVE_STYLES = list(zip(SERIES_COLORS, ("o", "s", "^", "D", "v"), strict=True))
_BASELINE_STYLES = {"R": (R_COLOR, "R (trained on real)"), "S": (S_COLOR, "S (trained on synthetic)")}


def _note(label: str) -> Line2D:
    """A legend row of text only (no marker): says what the error bars or bands are."""
    return Line2D([], [], linestyle="none", label=label)


def plot_layer_sweep(
    sweep: dict[str, dict[int, Summary]],
    baselines: dict[str, Summary],
    path: Path,
    *,
    num_layers: int = LEGACY_NUM_LAYERS,
) -> Path:
    """Figure 2 (`layer_sweep_figure`) saved as a PNG at `path`."""
    path = Path(path)
    fig = layer_sweep_figure(sweep, baselines, num_layers=num_layers)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def layer_sweep_figure(
    sweep: dict[str, dict[int, Summary]], baselines: dict[str, Summary], *, num_layers: int = LEGACY_NUM_LAYERS
) -> Figure:
    """Top-1 against N per curve (error bars: std over seeds), R and S as dashed lines with ±std bands.

    The x axis has a tick at every N = 1..L − 1 of the family's L = `num_layers` layers (the N a sweep can transfer
    and still train something), plus any other N in the sweep (0: from scratch, L: the source model). The default L
    is ResNet-18's, for sweeps written by hand."""
    # Deep families get a wider figure, so that a tick label per layer stays readable.
    fig = Figure(figsize=(max(8.0, 0.22 * num_layers), 5.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (key, curve) in enumerate(sweep.items()):
        color, marker = _CURVE_STYLES[i % len(_CURVE_STYLES)]
        ns = sorted(curve)
        spread = any(curve[n].n > 1 for n in ns)
        ax.errorbar(
            ns,
            [curve[n].mean for n in ns],
            yerr=[curve[n].std for n in ns] if spread else None,
            color=color,
            marker=marker,
            markersize=5,
            linewidth=1.6,
            capsize=3,
            label=figure_text(key),
        )
    for name, (color, label) in _BASELINE_STYLES.items():
        if name not in baselines:
            continue
        b = baselines[name]
        ax.axhline(b.mean, color=color, linestyle="--", linewidth=1.4, label=f"{label}: {b}")
        if b.n > 1 and b.std > 0:
            ax.axhspan(b.mean - b.std, b.mean + b.std, color=color, alpha=0.12, linewidth=0)
    shown = [s for curve in sweep.values() for s in curve.values()] + list(baselines.values())
    spread = spread_note(shown, "error bars and shaded bands")
    all_ns = {n for curve in sweep.values() for n in curve}
    ticks = sorted(set(range(1, num_layers)) | all_ns)
    ax.set_xticks(ticks)
    ax.set_xlim(min(ticks) - 0.5, max(ticks) + 0.5)
    ax.set_xlabel("N = layers 1..N transferred from the source model (rest trained on the target data)")
    ax.set_ylabel("top-1 (%) on the real test set")
    ax.set_title("Layer-wise transfer (Figure 2)")
    ax.grid(True, alpha=0.35)
    # Below the axes: curves cross the middle of the plot, so any legend inside would cover data.
    # Curves first, then the baselines (matplotlib lists plain lines before error-bar containers).
    curves = {figure_text(key) for key in sweep}
    entries = sorted(zip(*ax.get_legend_handles_labels(), strict=True), key=lambda e: e[1] not in curves)
    entries.append((_note(spread), spread))
    if entries:
        handles, labels = zip(*entries, strict=True)
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    return fig


# Data reduction (Figures 3 and 4): top-1 against the fraction 1/x of real training data on a log2 axis.
_ARM_STYLES = {
    "transfer": (ORANGE, "o"),
    "transfer_finetune": (PURPLE, "^"),
    "scratch": (GREEN, "s"),
    "full_finetune": (SKY, "D"),
}


def _reduction_curve(
    ax, curve: dict[float, Summary], fit: LogFit | None, color: str, marker: str, label: str, dodge: float = 1.0
):
    """Means ± std over seeds as unconnected markers (drawn at x·dodge, so arms that overlap stay apart), the fit as a
    line through the measured range. Returns the legend handles (points, fit line or None)."""
    label = figure_text(label)
    xs = sorted(curve)
    spread = any(curve[x].n > 1 for x in xs)
    points = ax.errorbar(
        [x * dodge for x in xs],
        [curve[x].mean for x in xs],
        yerr=[curve[x].std for x in xs] if spread else None,
        color=color,
        marker=marker,
        markersize=6,
        linestyle="none",
        capsize=4,
        elinewidth=1.4,
        label=f"{label} (mean ± 1 std over {seeds_phrase(curve.values())})" if spread else label,
        zorder=3,
    )
    if fit is None or len(xs) < 2:
        return points, None
    dense = np.geomspace(min(xs), max(xs), 200)
    (line,) = ax.plot(
        dense,
        fit(dense),
        color=color,
        linewidth=1.8,
        alpha=0.85,
        label=f"{label} fit: {fit.equation()}, R² = {fit.r2:.3f}",
    )
    return points, line


def _fraction_axis(ax, xs: list[float]) -> None:
    """x on a log2 scale, ticks at the measured x labelled as fractions of the real data (1, 1/2, ..., 1/64)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [fraction_label(x) for x in xs])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
    ax.set_xlabel("fraction 1/x of the real training data (log scale)")
    ax.set_ylabel("top-1 (%) on the real test set")
    ax.grid(True, alpha=0.35)


def plot_reduction_fit(curve: dict[float, Summary], fit: LogFit | None, path: Path, *, label: str = "transfer") -> Path:
    """Figure 3: one arm's top-1 per x (error bars: std over seeds) with its fit f(x) = a·log10(x) + b."""
    path = Path(path)
    fig = Figure(figsize=(7.5, 5.2), layout="constrained")
    ax = fig.add_subplot()
    color, marker = _ARM_STYLES.get(label.split(" (", 1)[0], _CURVE_STYLES[0])
    handles = [h for h in _reduction_curve(ax, curve, fit, color, marker, label) if h is not None]
    _fraction_axis(ax, sorted(curve))
    ax.set_title("Data reduction (Figure 3)")
    ax.legend(handles=handles, loc="best", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def plot_reduction_arms(
    points: dict[str, dict[float, Summary]],
    fits: dict[str, LogFit],
    path: Path,
    *,
    reference: Summary | None = None,
) -> Path:
    """Figure 4: every arm's top-1 per x with its fit; R (the full-real model) as a dashed line when given.

    Each arm's points are drawn a little left or right of their x so that overlapping error bars stay readable."""
    path = Path(path)
    fig = Figure(figsize=(9.5, 6), layout="constrained")
    ax = fig.add_subplot()
    markers, lines = [], []  # legend: a row per arm, its points on the left and its fit on the right
    for i, (key, curve) in enumerate(points.items()):
        color, marker = _ARM_STYLES.get(key.split(" (", 1)[0], _CURVE_STYLES[i % len(_CURVE_STYLES)])
        dodge = 2.0 ** (0.05 * (i - (len(points) - 1) / 2))  # a few pixels apart on the log2 axis
        handle, line = _reduction_curve(ax, curve, fits.get(key), color, marker, key, dodge)
        markers.append(handle)
        lines.append(line or Line2D([], [], linestyle="none", label=f"{figure_text(key)}: no fit (fewer than two x)"))
    if reference is not None:
        color, label = _BASELINE_STYLES["R"]
        r_label = f"{label}, all real data: {reference}"
        markers.append(ax.axhline(reference.mean, color=color, linestyle="--", linewidth=1.4, label=r_label))
        lines.append(Line2D([], [], linestyle="none", label=" "))
        if reference.n > 1 and reference.std > 0:
            ax.axhspan(
                reference.mean - reference.std, reference.mean + reference.std, color=color, alpha=0.12, linewidth=0
            )
    _fraction_axis(ax, sorted({x for curve in points.values() for x in curve}))
    if len(points) > 1:
        ax.set_xlabel("fraction 1/x of the real training data (log scale; arms' points offset slightly for legibility)")
    ax.set_title("Transfer vs scratch (Figure 4)")
    # Below the axes, as in Figure 2 (the curves span the whole plot): each arm's points then its fit, then R.
    if markers:
        fig.legend(handles=markers + lines, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def plot_grouped_bars(
    groups: dict[str, dict[str, Summary]],
    path: Path,
    *,
    title: str,
    ylabel: str = "top-1 (%) on the real test set",
    references: dict[str, Summary] | None = None,
) -> Path:
    """One cluster of bars per group (x axis), one bar per series inside it (error bars: std over seeds, and a
    legend row saying so and over how many seeds); `references` ("R", "S") as dashed lines."""
    path = Path(path)
    series = list(dict.fromkeys(name for bars in groups.values() for name in bars))
    fig = Figure(figsize=(max(6.5, 1.2 * len(groups) * max(1, len(series)) ** 0.5 + 2), 5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        xs = [g for g, (_, bars) in enumerate(groups.items()) if name in bars]
        values = [bars[name] for bars in groups.values() if name in bars]
        color = _CURVE_STYLES[i % len(_CURVE_STYLES)][0]
        ax.bar(
            [x + (i - (len(series) - 1) / 2) * width for x in xs],
            [v.mean for v in values],
            width,
            yerr=[v.std for v in values],
            capsize=3,
            color=color,
            alpha=0.85,
            label=figure_text(name),
        )
    for name, summary in (references or {}).items():
        color, label = _BASELINE_STYLES[name]
        ax.axhline(summary.mean, color=color, linestyle="--", linewidth=1.3, label=f"{label}: {summary}")
    ax.set_xticks(range(len(groups)), [figure_text(g) for g in groups], rotation=15 if len(groups) > 4 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.35)
    shown = [v for bars in groups.values() for v in bars.values()]
    handles, labels = ax.get_legend_handles_labels()
    note = spread_note(shown)
    handles, labels = [*handles, _note(note)], [*labels, note]
    entries = len(handles)
    fig.legend(
        handles, labels, loc="outside lower center", ncols=2 if entries > 3 else entries, fontsize=9, frameon=False
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def plot_mixing(shares: dict[float, Summary], path: Path, *, references: dict[str, Summary]) -> Path:
    """Top-1 against the share of synthetic images in a fixed-size training set (0: R's set, 1: S's set)."""
    path = Path(path)
    fig = Figure(figsize=(7, 4.8), layout="constrained")
    ax = fig.add_subplot()
    xs = sorted(shares)
    ax.errorbar(
        [100 * x for x in xs],
        [shares[x].mean for x in xs],
        yerr=[shares[x].std for x in xs],
        color=_CURVE_STYLES[0][0],
        marker="o",
        capsize=3,
        label=f"real + synthetic (mean; {spread_note(shares.values())})",
    )
    for name, summary in references.items():
        color, label = _BASELINE_STYLES[name]
        ax.axhline(summary.mean, color=color, linestyle="--", linewidth=1.3, label=f"{label}: {summary}")
    ax.set_xlabel("synthetic share of the training images (%)")
    ax.set_ylabel("top-1 (%) on the real test set")
    ax.set_title("Mixing real and synthetic images")
    ax.grid(True, alpha=0.35)
    ax.legend(fontsize=9, loc="best")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path
