"""Per-class figures: the sorted per-class gap, the confusion matrices of R and S, and example training images.

Drawn with matplotlib's object API (no pyplot state, no display: PNG via the Agg canvas), like `figures`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from synthgap.experiments.examples import SIDES, Examples
from synthgap.report.classes import Confusions, PerClassGaps
from synthgap.report.palette import BLACK, GREEN, R_COLOR, S_COLOR
from synthgap.report.text import figure_text

NAMED_AXES_MAX = 20  # confusion matrices name their classes up to this many, else ticks only
NAMED_BARS_MAX = 40  # the per-class figure names its classes up to this many
ANNOTATED_CELLS_MAX = 10  # ... and write each cell's share up to this many
_R_COLOR, _S_COLOR, _GAP_COLOR, _STUDENT_COLOR = R_COLOR, S_COLOR, GREEN, BLACK


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def per_class_figure(gaps: PerClassGaps) -> Figure:
    """Top: each class's top-1 for R and S (a line joins them); bottom: the gap R − S as bars and, with a sweep,
    how much of it the synthetic→real student recovers (student − S). Classes sorted by the gap, largest first,
    named up to `NAMED_BARS_MAX` classes (beyond, the figure shows the spread and the table names the extremes)."""
    classes = gaps.classes
    count = len(classes)
    named = count <= NAMED_BARS_MAX
    fig = Figure(figsize=(min(12.0, max(8.0, 0.22 * count + 2.5)), 7.5 if named else 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1.1, 1))
    xs = np.arange(count)
    r = np.array([c.r for c in classes])
    s = np.array([c.s for c in classes])
    marker = 18 if count <= 60 else 8
    top.vlines(xs, np.minimum(r, s), np.maximum(r, s), color="0.6", linewidth=1)
    top.scatter(xs, r, color=_R_COLOR, s=marker, zorder=3, label="R (trained on real)")
    top.scatter(xs, s, color=_S_COLOR, s=marker, zorder=3, label="S (trained on synthetic)")
    top.set_ylabel("top-1 (%) of the class")
    top.set_title("Per-class top-1 on the real test set, classes sorted by the gap R − S")
    gap = r - s
    bottom.bar(xs, gap, color=np.where(gap >= 0, _GAP_COLOR, "0.55"), width=0.8, label="gap R − S (grey: S better)")
    if gaps.student_n is not None:
        recovered = [(x, c.student - c.s) for x, c in zip(xs, classes, strict=True) if c.student is not None]
        if recovered:
            rx, ry = zip(*recovered, strict=True)
            label = f"synthetic→real N = {gaps.student_n} minus S (the part of the gap it recovers)"
            bottom.scatter(rx, ry, color=_STUDENT_COLOR, marker="_", s=60, linewidths=2, zorder=3, label=label)
    bottom.axhline(0, color="0.3", linewidth=0.8)
    bottom.set_ylabel("gap R − S (pp)")
    for ax in (top, bottom):
        ax.grid(True, axis="y", alpha=0.35)
    if named:
        slanted = count <= 12  # few names read best slanted; many need the room of vertical text
        bottom.set_xticks(
            xs,
            [figure_text(c.name) for c in classes],
            rotation=30 if slanted else 90,
            ha="right" if slanted else "center",
            rotation_mode="anchor" if slanted else "default",
            fontsize=8 if count <= 25 else 7,
        )
    else:
        bottom.set_xticks(xs, [])
        bottom.set_xlabel(f"{count} classes, largest gap on the left (the table names the largest and smallest)")
    bottom.set_xlim(-0.7, count - 0.3)
    handles = [h for ax in (top, bottom) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    return fig


def plot_per_class(gaps: PerClassGaps, path: Path) -> Path:
    return _save(per_class_figure(gaps), path)


def row_normalised(matrix: list[list[int]]) -> np.ndarray:
    """Each row divided by its total (the share of a true class's test images given each label); 0 for an empty
    row."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_figure(confusions: Confusions) -> Figure:
    """R and S side by side (whichever are present), rows normalised, class names on the axes up to
    `NAMED_AXES_MAX` classes."""
    names = {"R": "R (trained on real)", "S": "S (trained on synthetic)"}
    panels = [(names[k], confusions.matrices[k]) for k in ("R", "S") if k in confusions.matrices]
    count = len(confusions.classes)
    named = count <= NAMED_AXES_MAX
    side = 4.8 if named else 4.5
    fig = Figure(figsize=(side * len(panels) + 1.5, side + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    image = None
    for ax, (title, matrix) in zip(axes, panels, strict=True):
        percent = 100 * row_normalised(matrix)  # the cells are written in %, so the colour bar is too
        image = ax.imshow(percent, cmap="Blues", vmin=0.0, vmax=100.0, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel("predicted class" if named else "predicted class (index)")
        ax.set_ylabel("true class" if named else "true class (index)")
        if named:
            names = [figure_text(name) for name in confusions.classes]
            ax.set_xticks(range(count), names, rotation=90, fontsize=8)
            ax.set_yticks(range(count), names, fontsize=8)
        if count <= ANNOTATED_CELLS_MAX:
            for (i, j), value in np.ndenumerate(percent):
                color = "white" if value > 55 else "black"
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="% of the class's test images")
    fig.suptitle(f"Confusion matrices on the real test set (seed {confusions.seed}, rows normalised)")
    return fig


def plot_confusions(confusions: Confusions, path: Path) -> Path:
    return _save(confusion_figure(confusions), path)


def examples_mosaic(examples: Examples, rows: list[int], gap: int = 2, split: int = 12) -> np.ndarray:
    """H×W×3 uint8: per class in `rows` a row of its k real images, a wider gap, its k synthetic images; white
    between images and where a class had fewer than k."""
    k = examples.per_class
    size = int(examples.images[SIDES[0]].shape[-1])
    width = 2 * k * size + 2 * (k - 1) * gap + split
    height = len(rows) * size + (len(rows) - 1) * gap
    mosaic = np.full((height, width, 3), 255, dtype=np.uint8)
    for row, label in enumerate(rows):
        top = row * (size + gap)
        for block, side in enumerate(SIDES):
            left = block * (k * size + (k - 1) * gap + split)
            for slot in range(min(k, examples.counts[side][label])):
                image = examples.images[side][label, slot].transpose(1, 2, 0)
                x = left + slot * (size + gap)
                mosaic[top : top + size, x : x + size] = image
    return mosaic


def examples_figure(examples: Examples, rows: list[int], *, caption: str = "") -> Figure:
    """One row per class in `rows` (indices into `examples.classes`): its real images on the left, its synthetic
    images on the right, the class name at the left.

    The margins are set by hand (no layout engine): the mosaic's axes must keep the image's aspect, and a layout
    engine that shrinks it to make room for long class names clips them instead."""
    k = examples.per_class
    size = int(examples.images[SIDES[0]].shape[-1])
    mosaic = examples_mosaic(examples, rows)
    scale = 0.5 / size  # inches per mosaic pixel: each example about 0.5 in wide
    image_w, image_h = mosaic.shape[1] * scale, mosaic.shape[0] * scale
    left = 0.075 * max(len(examples.classes[i]) for i in rows) + 0.25  # class names at 9 pt
    top, bottom, right = 0.4, 0.45 if caption else 0.1, 0.1
    width, height = left + image_w + right, top + image_h + bottom
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, image_w / width, image_h / height))
    ax.imshow(mosaic, interpolation="nearest")
    step = size + 2
    names = [figure_text(examples.classes[i]) for i in rows]
    ax.set_yticks([i * step + size / 2 for i in range(len(rows))], names, fontsize=9)
    block = k * size + (k - 1) * 2
    ax.set_xticks([block / 2, block + 12 + block / 2], [f"real ({k} per class)", f"synthetic ({k} per class)"])
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if caption:
        ax.set_xlabel(caption, fontsize=9)
    return fig


def plot_examples(examples: Examples, rows: list[int], path: Path, *, caption: str = "") -> Path:
    return _save(examples_figure(examples, rows, caption=caption), path)
