"""The convergence rule on baselines' learning curves, the line beside the gap, the section and its figure."""

from __future__ import annotations

import pytest

from synthgap.demo import demo_summary
from synthgap.report.build import report_markdown
from synthgap.report.convergence import convergence_line, convergence_note, read_curve
from tests.report.records import make_record


def curve(*top1: float) -> list[list[float]]:
    return [[epoch, value, 10.0 * epoch] for epoch, value in enumerate(top1, start=1)]


def baselines(real_curve, synthetic_curve, epochs: int = 8) -> list:
    return [
        make_record(run="baseline-real-s0", epochs=epochs, top1=80.0, curve=real_curve, curve_images=2000),
        make_record(
            run="baseline-synthetic-s0",
            side="synthetic",
            target="cifake:synthetic",
            epochs=epochs,
            top1=50.0,
            curve=synthetic_curve,
            curve_images=2000,
        ),
    ]


def test_the_rule_reads_the_gain_over_the_last_quarter():
    reading = read_curve(curve(40, 50, 60, 70, 75, 78, 79, 79.5), epochs=8)
    assert (reading.start_epoch, reading.start_top1, reading.end_top1) == (6, 78, 79.5)
    assert reading.gain == pytest.approx(1.5) and not reading.converged
    assert read_curve(curve(40, 50, 60, 70, 75, 79, 79.5, 80), epochs=8).converged  # +1.0: at the bound
    assert read_curve(curve(40, 50), epochs=2).start_epoch == 1  # one epoch is the last quarter of two
    assert read_curve([[8, 80.0, 1.0]], epochs=8) is None  # no point before the last quarter
    assert read_curve(None, epochs=8) is None
    # a curve evaluated every other epoch starts the quarter at the last point before it
    assert read_curve([[2, 50, 1], [4, 60, 2], [6, 70, 3], [8, 71, 4]], epochs=8).start_epoch == 6


def test_the_line_beside_the_gap_names_the_students_still_learning():
    still = baselines(curve(40, 50, 60, 70, 75, 78, 79, 82), curve(30, 40, 45, 48, 49, 50, 50, 50))
    note = convergence_note(still)
    assert note.startswith("The gap below is between students that have not converged: baseline-real-s0 (+4.0 pp)")
    assert "synthetic" not in note
    done = baselines(curve(40, 50, 60, 70, 75, 79, 79.5, 80), curve(30, 40, 45, 48, 49, 50, 50, 50))
    assert convergence_note(done).startswith("Every baseline converged")
    unknown = baselines(None, None)
    assert convergence_note(unknown).startswith("Convergence not measured for baseline-real-s0, baseline-synthetic")
    assert convergence_note([]) is None


def test_the_report_shows_the_curves_and_the_verdict(tmp_path):
    records = baselines(curve(40, 50, 60, 70, 75, 78, 79, 82), curve(30, 40, 45, 48, 49, 50, 50, 50))
    markdown = report_markdown(tmp_path, records, tmp_path / "figures")
    assert "## Convergence of the baselines" in markdown
    assert "| baseline-real-s0 | 8 | 2000 | 78.00 (epoch 6) | 82.00 | +4.00 | no |" in markdown
    assert "| baseline-synthetic-s0 | 8 | 2000 | 50.00 (epoch 6) | 50.00 | +0.00 | yes |" in markdown
    assert "![Learning curves of the baselines](figures/convergence.png)" in markdown
    assert (tmp_path / "figures" / "convergence.png").stat().st_size > 0
    gap_at = markdown.index("Gap R − S")
    assert markdown.index("The gap below is between students that have not converged") < gap_at


def test_the_demo_prints_its_verdict_in_one_line():
    records = baselines(curve(40, 50, 60, 70, 75, 78, 79, 82), None)
    line = demo_summary(records).splitlines()[0]
    assert line == convergence_line(records)
    assert line == (
        "convergence: baseline-real-s0 80.0% (+4.0 pp in the last quarter: NOT converged); "
        "baseline-synthetic-s0 50.0% (no curve)"
    )
