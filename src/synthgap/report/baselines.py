"""The baseline sections of a report: R against S (with the convergence note), and the per-class results (the gap
per class, table and figure, and the confusion matrices of R and S)."""

from __future__ import annotations

from synthgap.experiments.results import ResultRecord
from synthgap.report.class_figures import plot_confusions, plot_per_class
from synthgap.report.classes import (
    TABLE_ENDS,
    first_seed_confusions,
    per_class_gaps,
    per_class_reading,
    per_class_table_lines,
)
from synthgap.report.convergence import convergence_note
from synthgap.report.sections import Scope, section
from synthgap.report.tables import gap_lines


@section("baselines", kinds=("baseline",), order=10)
def baseline_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    gap = gap_lines(records)
    if not gap:
        return []
    note = convergence_note(records)
    return [
        scope.heading("Baselines: real (R) vs synthetic (S) training data"),
        "",
        *([note, ""] if note else []),
        *gap,
        "",
    ]


@section("per_class", kinds=("baseline",), order=20)
def per_class_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The per-class section: the gap R − S per class (table and figure) and the confusion matrices of R and S;
    draws the per_class and confusion figures. Empty when no baseline carries per-class results."""
    gaps = per_class_gaps(records)
    confusions = first_seed_confusions(records)
    if gaps is None and confusions is None:
        return []
    lines = [scope.heading("Per-class results"), ""]
    if gaps is not None:
        plot_per_class(gaps, scope.figure_path("per_class"))
        lines += [
            per_class_reading(gaps),
            "",
            f"![Per-class top-1 of R and S and the gap R − S]({scope.figure('per_class')})",
            "",
        ]
        if len(gaps.classes) > 2 * TABLE_ENDS:
            lines += [f"The {TABLE_ENDS} largest and {TABLE_ENDS} smallest gaps (the figure shows every class):", ""]
        lines += [*per_class_table_lines(gaps), ""]
    if confusions is not None:
        plot_confusions(confusions, scope.figure_path("confusion"))
        sides = " and ".join(k for k in ("R", "S") if k in confusions.matrices)
        lines += [
            f"Confusion matrices of {sides} on the real test set, from the baselines of seed {confusions.seed}: "
            "row = true class, column = predicted class, each row divided by the class's test images (so an "
            "imbalanced test set does not darken its large classes).",
            "",
            f"![Confusion matrices of R and S (seed {confusions.seed})]({scope.figure('confusion')})",
            "",
        ]
    return lines
