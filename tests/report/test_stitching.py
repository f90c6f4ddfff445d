"""Model-stitching report: penalties against each seed's own R, the excess over another R's, the layer sweep's
recovered share, Spearman's rank correlation, the table, the reading and the figure, on hand-made records."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from synthgap.analysis.summary import spearman
from synthgap.experiments.kinds.layer_transfer import TransferRecord
from synthgap.experiments.kinds.stitching import StitchRecord
from synthgap.experiments.results import BaselineRecord, append_result
from synthgap.report.build import build_report
from synthgap.report.stitching import (
    StitchPoint,
    excess_penalty,
    plot_stitching,
    stitch_points,
    stitch_reading,
    stitch_table,
    sweep_recovered,
)
from synthgap.report.tables import Summary, summarize
from tests.report.records import make_record, transfer_record

REAL, SYNTH = "cifake:real", "cifake:synthetic"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
R_TOP1 = {0: 80.0, 1: 82.0}
S_TOP1 = {0: 60.0, 1: 62.0}


def baseline(side: str, seed: int, top1: float) -> BaselineRecord:
    record = make_record(
        run=f"baseline-{side}-s{seed}", target=REAL if side == "real" else SYNTH, side=side, seed=seed, top1=top1
    )
    assert isinstance(record, BaselineRecord)
    return record


def stitch(giver: str, n: int, seed: int, top1: float, start: float | None = 10.0) -> StitchRecord:
    side = "synthetic" if giver == "synthetic" else "real"
    record = make_record(
        run=f"stitch-{giver}-n{n:02d}-s{seed}-e1",
        kind="stitching",
        giver=giver,
        giver_seed=seed + 1 if giver == "real_other" else seed,
        source=REAL if side == "real" else SYNTH,
        source_side=side,
        n_transferred=n,
        frozen=True,
        seed=seed,
        top1=top1,
        start_top1=start,
        stitch_parameters=88,
    )
    assert isinstance(record, StitchRecord)
    return record


def sweep(n: int, seed: int, top1: float, **fields) -> TransferRecord:
    record = transfer_record(n, top1, run=f"lt-n{n}-s{seed}", seed=seed, **fields)
    assert isinstance(record, TransferRecord) and (record.source_side, record.side) == ("synthetic", "real")
    return record


BASELINES = [baseline("real", seed, top1) for seed, top1 in R_TOP1.items()]
BASELINES += [baseline("synthetic", seed, top1) for seed, top1 in S_TOP1.items()]


def point(penalty: float) -> StitchPoint:
    """A one-seed point of R = 80 with the given penalty."""
    return StitchPoint(summarize([80.0 - penalty]), summarize([penalty]), None)


def points_of(penalties: dict[str, dict[int, float]]) -> dict[str, dict[int, StitchPoint]]:
    return {giver: {n: point(p) for n, p in curve.items()} for giver, curve in penalties.items()}


# --- penalties ------------------------------------------------------------------------------------------------------


def test_penalties_are_taken_against_each_seeds_own_receiver():
    records = [
        stitch("real_other", 2, 0, 79.5, start=70.0),  # penalties 0.5 and 0.5
        stitch("real_other", 2, 1, 81.5, start=None),
        stitch("synthetic", 2, 0, 78.0, start=40.0),  # penalties 2 and 4
        stitch("synthetic", 2, 1, 78.0, start=50.0),
        stitch("synthetic", 9, 0, 70.0),  # penalty 10 (one seed)
        stitch("synthetic", 9, 7, 1.0),  # seed 7 has no R: left out
        *BASELINES,
    ]
    points = stitch_points(records)
    assert list(points) == ["synthetic", "real_other"]  # GIVERS order, whatever the records' order
    assert list(points["synthetic"]) == [2, 9]
    two = points["synthetic"][2]
    assert two.top1 == Summary(78.0, 0.0, 2)
    assert (two.penalty.mean, two.penalty.std, two.penalty.n) == pytest.approx((3.0, math.sqrt(2), 2))
    assert two.start.mean == pytest.approx(45.0) and two.start.n == 2
    assert points["synthetic"][9].penalty == Summary(10.0, 0.0, 1)  # seed 7's record would have made it 2 seeds
    other = points["real_other"][2]
    assert other.penalty.mean == pytest.approx(0.5) and other.penalty.std == pytest.approx(0.0)
    assert other.start == Summary(70.0, 0.0, 1)  # a record without a start does not count towards it
    assert excess_penalty(points) == pytest.approx({2: 2.5})  # N = 9 has no real_other point


def test_no_points_without_a_receiver_and_no_excess_without_both_givers():
    assert stitch_points([stitch("synthetic", 2, 0, 70.0), baseline("synthetic", 0, 60.0)]) == {}
    assert excess_penalty(points_of({"synthetic": {2: 3.0}, "real": {2: 1.0}})) == {}
    assert excess_penalty(points_of({"real_other": {2: 3.0}})) == {}
    excess = excess_penalty(points_of({"synthetic": {2: 3.0, 5: 1.0}, "real_other": {2: 1.0, 5: 2.5}}))
    assert excess == pytest.approx({2: 2.0, 5: -1.5})


# --- the layer sweep ------------------------------------------------------------------------------------------------


def test_the_sweep_recovered_share_is_taken_per_seed_then_averaged():
    records = [
        *BASELINES,
        sweep(2, 0, 75.0),  # (75 − 60) / (80 − 60) = 75 %
        sweep(2, 1, 72.0),  # (72 − 62) / (82 − 62) = 50 %
        sweep(9, 0, 65.0),  # 25 %
        sweep(9, 5, 99.0),  # seed 5 has no baselines: left out
        baseline("real", 3, 70.0),
        baseline("synthetic", 3, 70.0),
        sweep(2, 3, 10.0),  # seed 3: R = S, no gap to recover: left out
        stitch("synthetic", 2, 0, 61.0),  # a stitch is not a sweep student
        transfer_record(2, 30.0, source_side="real", run="r2s-n2-s0"),  # the other direction
    ]
    assert sweep_recovered(records) == pytest.approx({2: 62.5, 9: 25.0})
    assert sweep_recovered(BASELINES) == {}


# --- rank correlation -----------------------------------------------------------------------------------------------


def test_a_monotone_relation_has_rank_correlation_one_whatever_its_shape():
    xs = [1.0, 2.0, 3.0, 100.0]
    assert spearman(xs, [1.0, 4.0, 9.0, 10_000.0]) == pytest.approx(1.0)  # Pearson would be below 1
    assert spearman(xs, [5.0, 0.0, -3.0, -4.0]) == pytest.approx(-1.0)
    assert spearman([3.0, 1.0, 2.0], [30.0, 10.0, 20.0]) == pytest.approx(1.0)  # order does not matter


def test_ties_share_their_mean_rank():
    # x ranks 1, 2.5, 2.5, 4 and y ranks 1, 3, 2, 4: ρ = 4.5 / √(4.5 · 5)
    assert spearman([1.0, 2.0, 2.0, 4.0], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(math.sqrt(0.9))
    assert spearman([5.0, 5.0, 1.0, 1.0], [2.0, 2.0, 0.0, 0.0]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("xs", "ys"),
    [
        ([1.0, 2.0], [2.0, 1.0]),  # fewer than 3 pairs
        ([], []),
        ([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]),  # a constant side
        ([7.0, 7.0, 7.0, 7.0], [1.0, 2.0, 3.0, 4.0]),
        ([1.0, 2.0, 3.0], [1.0, 2.0]),  # unequal lengths
    ],
)
def test_no_rank_correlation_from_too_few_points_or_a_constant_side(xs, ys):
    assert spearman(xs, ys) is None


# --- table and reading ----------------------------------------------------------------------------------------------


def test_the_table_has_a_column_per_giver_the_excess_and_the_sweep():
    points = points_of({"synthetic": {2: 3.0, 9: 6.0}, "real": {2: 0.25}, "real_other": {2: 0.5, 9: 1.0}})
    lines = stitch_table(points, {2: 75.0})
    assert lines[0] == (
        "| N | S → R top-1 (penalty) | R → R (self) top-1 (penalty) | R' → R (other seed) top-1 (penalty) | "
        "S excess penalty | sweep: gap recovered |"
    )
    assert lines[2] == "| 2 | 77.00 (+3.00) | 79.75 (+0.25) | 79.50 (+0.50) | +2.50 | 75 % |"
    assert lines[3] == "| 9 | 74.00 (+6.00) | – | 79.00 (+1.00) | +5.00 | – |"
    assert stitch_table(points_of({"real": {4: 1.0}}), {})[0] == "| N | R → R (self) top-1 (penalty) |"


def test_the_reading_names_the_first_cut_whose_excess_exceeds_one_point():
    points = points_of(
        {
            "synthetic": {2: 1.0, 5: 1.6, 9: 4.0, 13: 6.0},
            "real": {2: 0.1, 9: -0.4},
            "real_other": {2: 0.5, 5: 0.8, 9: 1.0, 13: 1.0},
        }
    )  # excess 0.5, 0.8, 3.0, 5.0
    reading = stitch_reading(points, {})
    assert "as usable to R as another R's (excess penalty ≤ 1 pp) up to N = 5; from N = 9 they cost more " in reading
    assert "(+3.00 pp there, +5.00 pp at N = 13)" in reading
    assert "The self-stitch control changes R's top-1 by at most +0.40 pp (N = 9)" in reading  # it gained there
    assert "No rank correlation with the layer sweep" in reading


def test_the_reading_says_when_no_cut_or_every_cut_is_compatible():
    first_bad = points_of({"synthetic": {2: 3.0, 5: 1.0}, "real_other": {2: 0.5, 5: 0.5}})  # excess 2.5, 0.5
    reading = stitch_reading(first_bad, {})
    assert "at no cut; from N = 2 they cost more (+2.50 pp there, +2.50 pp at N = 2)" in reading
    compatible = points_of({"synthetic": {2: 1.0, 5: 2.0}, "real_other": {2: 0.5, 5: 1.2}})  # excess 0.5, 0.8
    reading = stitch_reading(compatible, {})
    assert "At every cut measured, S's layers cost R at most 1 pp more than another R's" in reading
    assert "(largest excess +0.80 pp at N = 5)" in reading and "from N =" not in reading
    at_the_limit = stitch_reading(points_of({"synthetic": {2: 2.0}, "real_other": {2: 1.0}}), {})  # excess 1.0
    assert at_the_limit.startswith("At every cut measured") and "(largest excess +1.00 pp at N = 2)" in at_the_limit


def test_the_reading_ranks_the_penalty_against_the_sweep_over_three_or_more_common_cuts():
    points = points_of({"synthetic": {2: 1.0, 5: 2.0, 9: 4.0, 13: 8.0}})
    recovered = {2: 90.0, 5: 80.0, 9: 60.0, 13: 30.0, 17: 5.0}
    reading = stitch_reading(points, recovered)
    assert (
        "Over the 4 cuts both measured, the rank correlation of S's stitching penalty with the sweep's "
        "recovered share is -1.00 (Spearman" in reading
    )
    two_common = stitch_reading(points, {2: 90.0, 13: 30.0, 17: 5.0})
    assert "rank correlation of" not in two_common and "No rank correlation with the layer sweep" in two_common
    assert stitch_reading(points_of({"real": {2: 0.5}}), recovered) == (
        "The self-stitch control changes R's top-1 by at most -0.50 pp (N = 2): what the stitch itself costs or adds."
    )


# --- figure and section ---------------------------------------------------------------------------------------------


def test_the_figure_is_a_png_with_a_second_panel_beside_the_sweep(tmp_path):
    points = points_of({"synthetic": {2: 3.0, 9: 6.0, 13: 7.0}, "real": {2: 0.2}, "real_other": {2: 0.5, 9: 1.0}})
    one = plot_stitching(points, {}, tmp_path / "new" / "one.png", num_layers=18)
    two = plot_stitching(points, {2: 75.0, 9: 40.0}, tmp_path / "two.png", num_layers=18)
    assert one == tmp_path / "new" / "one.png"
    for path in (one, two):
        assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(one) as a, Image.open(two) as b:
        assert b.width == pytest.approx(2 * a.width, abs=2) and a.height == b.height


def test_the_report_section_from_written_records(tmp_path):
    records = [
        *BASELINES,
        *(
            stitch(g, n, seed, R_TOP1[seed] - p, start=70.0)
            for seed in (0, 1)
            for g, curve in {
                "synthetic": {2: 1.0, 9: 5.0},
                "real": {2: 0.0, 9: 0.5},
                "real_other": {2: 0.5, 9: 1.0},
            }.items()
            for n, p in curve.items()
        ),
    ]
    for record in records:
        append_result(tmp_path, record)
    markdown = build_report(tmp_path).read_text()
    section = markdown[markdown.index("## Model stitching") :]
    assert "![Model stitching](figures/stitching.png)" in section
    assert "| 9 | 76.00 ± 1.41 (+5.00) | 80.50 ± 1.41 (+0.50) | 80.00 ± 1.41 (+1.00) | +4.00 |" in section
    assert "up to N = 2; from N = 9 they cost more" in section
    assert "At its least-squares start the self-stitch reads 70.00–70.00 %." in section
    assert (tmp_path / "figures" / "stitching.png").read_bytes()[:8] == PNG_MAGIC
