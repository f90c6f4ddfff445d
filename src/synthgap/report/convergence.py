"""Whether the baselines converged: their learning curves (top-1 on a fixed test subset after each evaluated
epoch), a figure of them, and the rule the gap is read with.

The rule: a baseline that still gained more than `CONVERGED_PP` percentage points over the last quarter of its
epochs has not converged, and a gap between such students mixes the synthetic/real difference with the training
budget. A baseline without a curve (a recipe that evaluated only after the last epoch) is "not measured".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from synthgap.experiments.results import ResultRecord
from synthgap.report.palette import R_COLOR, S_COLOR, SERIES_COLORS
from synthgap.report.sections import Scope, section
from synthgap.report.text import md_text

CONVERGED_PP = 1.0  # the most a converged student may still gain over the last quarter of its epochs


@dataclass(frozen=True)
class Convergence:
    """A learning curve read by the rule: the top-1 where the last quarter starts and at the end (same images)."""

    start_epoch: int
    start_top1: float
    end_epoch: int
    end_top1: float

    @property
    def gain(self) -> float:
        return self.end_top1 - self.start_top1

    @property
    def converged(self) -> bool:
        return self.gain <= CONVERGED_PP


def read_curve(curve: list[list[float]] | None, epochs: int) -> Convergence | None:
    """The rule applied to a record's curve: None when the curve has no point at or before the start of the last
    quarter (epochs − ⌈epochs/4⌉) besides its last point."""
    if not curve or len(curve) < 2:
        return None
    start = epochs - max(1, math.ceil(epochs / 4))
    end_epoch, end_top1 = curve[-1][:2]
    before = [(point[0], point[1]) for point in curve[:-1] if point[0] <= start]
    if not before:
        return None
    start_epoch, start_top1 = before[-1]
    return Convergence(int(start_epoch), float(start_top1), int(end_epoch), float(end_top1))


def baseline_convergence(records: list[ResultRecord]) -> list[tuple[ResultRecord, Convergence | None]]:
    """Each from-scratch baseline with the rule's reading of its curve."""
    return [(r, read_curve(getattr(r, "curve", None), r.epochs)) for r in records if r.kind == "baseline"]


def convergence_note(records: list[ResultRecord]) -> str | None:
    """One line for beside the gap: which baselines have not converged (or have no curve to tell), else None."""
    readings = baseline_convergence(records)
    if not readings:
        return None
    still = [f"{md_text(r.run)} (+{c.gain:.1f} pp)" for r, c in readings if c is not None and not c.converged]
    unknown = [md_text(r.run) for r, c in readings if c is None]
    if still:
        return (
            f"The gap below is between students that have not converged: {', '.join(still)} still gained more "
            f"than {CONVERGED_PP:g} pp over the last quarter of their epochs; train longer before reading the gap."
        )
    if unknown:
        return (
            f"Convergence not measured for {', '.join(unknown)}: their recipe evaluated only after the last epoch "
            "(recipe.eval_every: 1, as in the fast preset, records a learning curve)."
        )
    return f"Every baseline converged: none gained more than {CONVERGED_PP:g} pp over the last quarter of its epochs."


def convergence_line(records: list[ResultRecord]) -> str:
    """One plain line for a terminal: each baseline's final top-1 and its gain over the last quarter."""
    parts = []
    for record, reading in baseline_convergence(records):
        if reading is None:
            parts.append(f"{record.run} {record.top1:.1f}% (no curve)")
        else:
            verdict = "converged" if reading.converged else "NOT converged"
            parts.append(f"{record.run} {record.top1:.1f}% ({reading.gain:+.1f} pp in the last quarter: {verdict})")
    return "convergence: " + "; ".join(parts) if parts else "convergence: no baselines"


@section("convergence", kinds=("baseline",), order=15)
def convergence_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The learning curves of the baselines that kept one: a table by the rule and a figure."""
    readings = [(r, c) for r, c in baseline_convergence(records) if getattr(r, "curve", None)]
    if not readings:
        return []
    lines = [
        scope.heading("Convergence of the baselines"),
        "",
        f"Top-1 on a fixed subset of the real test images after each evaluated epoch. A baseline that still gained "
        f"more than {CONVERGED_PP:g} pp over the last quarter of its epochs has not converged.",
        "",
        "| run | epochs | curve images | top-1 at the last quarter's start (%) | top-1 at the end (%) | gain (pp) "
        "| converged |",
        "|---|---|---|---|---|---|---|",
    ]
    for record, reading in readings:
        images = str(getattr(record, "curve_images", None) or "–")
        if reading is None:
            cells = ["–", "–", "–", "not measured"]
        else:
            cells = [
                f"{reading.start_top1:.2f} (epoch {reading.start_epoch})",
                f"{reading.end_top1:.2f}",
                f"{reading.gain:+.2f}",
                "yes" if reading.converged else "no",
            ]
        lines.append("| " + " | ".join([md_text(record.run), str(record.epochs), images, *cells]) + " |")
    plot_curves([r for r, _ in readings], scope.figure_path("convergence"))
    lines += ["", f"![Learning curves of the baselines]({scope.figure('convergence')})", ""]
    return lines


def plot_curves(records: list[ResultRecord], path: Path) -> Path:
    """Top-1 against epoch for each baseline with a curve (R blue, S orange, others in the series colours)."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    others = iter(SERIES_COLORS * 4)
    for record in records:
        colour = {"real": R_COLOR, "synthetic": S_COLOR}.get(record.side or "") or next(others)
        epochs, top1 = [point[0] for point in record.curve], [point[1] for point in record.curve]
        ax.plot(epochs, top1, marker="o", markersize=3, color=colour, alpha=0.85, label=record.run)
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 (%) on the curve's real test images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path
