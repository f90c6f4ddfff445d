"""Data-reduction report (Figures 3/4): known numbers in, known table / fits / reading / figures out."""

import math

import pytest

from synthgap.experiments.results import append_result
from synthgap.report.build import build_report
from synthgap.report.figures import plot_reduction_arms, plot_reduction_fit
from synthgap.report.layers import layer_baselines
from synthgap.report.reduction import (
    reduction_fits,
    reduction_points,
    reduction_reading,
    reduction_table_lines,
)
from synthgap.report.tables import Summary
from tests.report.records import make_record

REAL, SYNTH = "cifake:real", "cifake:synthetic"
XS = (1, 2, 4, 8, 16, 32, 64)
NOISE = {0: +1.0, 1: -1.0}  # two seeds at mean ± 1 → sample std √2
LOG2_IN_LOG10 = 1 / math.log10(2)  # a straight line in log2(x) with slope s has a = s / log10(2)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def transfer_mean(x):  # 80 with all real data, −1 pp per halving: 77 at 1/8, 74 at 1/64
    return 80.0 - math.log2(x)


def scratch_mean(x):  # 78 with all real data, −4 pp per halving: 66 at 1/8, 54 at 1/64
    return 78.0 - 4 * math.log2(x)


def reduction(arm, x, seed, top1, k=16, **family):
    """A student of `arm` trained on 1/x of the real data (transfer: layers 1..k from the synthetic model)."""
    transfer = arm == "transfer"
    return make_record(
        run=f"{arm}-k{k if transfer else 0}-x{x}-s{seed}",
        kind="data_reduction",
        arm=arm,
        source=SYNTH if transfer else None,
        source_side="synthetic" if transfer else None,
        side="real",
        n_transferred=k if transfer else 0,
        frozen=transfer,
        real_fraction=1 / x,
        x=round(x, 2),  # x as the runner writes it
        seed=seed,
        top1=top1,
        **family,
    )


def reduction_records(seeds=(0, 1), arms=("scratch", "transfer"), xs=XS, r=True, k=16, **family):
    out = []
    for seed in seeds:
        noise = NOISE[seed] if len(seeds) > 1 else 0.0
        if r:
            out.append(make_record(run=f"R-{seed}", side="real", seed=seed, top1=82.0 + noise, **family))
        for arm in arms:  # scratch first on purpose: the report orders arms itself
            for x in xs:
                mean = transfer_mean(x) if arm == "transfer" else scratch_mean(x)
                out.append(reduction(arm, x, seed, mean + noise, k=k, **family))
    return out


RECORDS = reduction_records()


def test_points_per_arm_and_x():
    points = reduction_points(RECORDS)
    assert list(points) == ["transfer", "scratch"]
    for arm, mean in (("transfer", transfer_mean), ("scratch", scratch_mean)):
        assert list(points[arm]) == list(XS)
        for x, summary in points[arm].items():
            assert summary.mean == pytest.approx(mean(x))
            assert summary.std == pytest.approx(math.sqrt(2))
            assert summary.n == 2


def test_x_falls_back_to_real_fraction():
    no_x = [make_record(**{k: v for k, v in r.model_dump().items() if k != "x"}) for r in RECORDS]
    assert no_x[-1].x is None
    points = reduction_points(no_x)
    assert list(points["transfer"]) == list(XS) and points["scratch"][8].mean == pytest.approx(66.0)


def test_fits_and_seed_bootstrap():
    fits = reduction_fits(RECORDS)
    transfer, scratch = fits["transfer"], fits["scratch"]
    assert transfer.fit.a == pytest.approx(-LOG2_IN_LOG10) and transfer.fit.b == pytest.approx(80.0)
    assert scratch.fit.a == pytest.approx(-4 * LOG2_IN_LOG10) and scratch.fit.b == pytest.approx(78.0)
    # residuals ±1 on 14 points; SS_tot = 14 + 2 · Σ (mean(x) − overall mean)²
    assert transfer.fit.r2 == pytest.approx(1 - 14 / (14 + 2 * 28))
    assert scratch.fit.r2 == pytest.approx(1 - 14 / (14 + 2 * 28 * 16))
    assert transfer.fit.n_points == 14 and transfer.n_seeds == 2
    # each seed is the line ± 1: the slope never changes, the intercept is 79, 80 or 81
    assert transfer.ci_a == pytest.approx((-LOG2_IN_LOG10, -LOG2_IN_LOG10))
    assert transfer.ci_b == pytest.approx((79.0, 81.0))
    assert reduction_fits(RECORDS) == fits  # deterministic


def test_table_rows():
    lines = reduction_table_lines(reduction_points(RECORDS), reduction_fits(RECORDS))
    assert "mean ± sample std over 2 seeds" in lines[0] and "transfer = layers 1..k" in lines[0]
    assert lines[2] == "| x | fraction of real data | transfer | scratch |"
    assert lines[3] == "|---|---|---|---|"
    assert lines[4] == "| 1 | 1 | 80.00 ± 1.41 | 78.00 ± 1.41 |"
    assert lines[7] == "| 8 | 1/8 | 77.00 ± 1.41 | 66.00 ± 1.41 |"
    assert lines[10] == "| 64 | 1/64 | 74.00 ± 1.41 | 54.00 ± 1.41 |"
    fits = lines[lines.index("| arm | a (95% CI) | b (95% CI) | R² | runs |") :]
    assert fits[2:] == [
        "| transfer | -3.32 [-3.32, -3.32] | 80.00 [79.00, 81.00] | 0.800 | 14 |",
        "| scratch | -13.29 [-13.29, -13.29] | 78.00 [77.00, 79.00] | 0.985 | 14 |",
        "| paper (ImageNet-100, transfer) | -2.23 | 85.61 | – | – |",
    ]


def test_reading_numbers():
    points, fits = reduction_points(RECORDS), reduction_fits(RECORDS)
    reading = reduction_reading(points, fits, layer_baselines(RECORDS))
    assert "\n" not in reading
    assert "values are means over up to 2 seeds." in reading
    assert "an arm's top-1 with all real data (x = 1) minus its top-1 at x = 8" in reading
    assert "1/8 of the real data costs 3.00 pp (transfer) vs 12.00 pp (scratch)." in reading
    assert "3.32 pp (transfer; 95% CI 3.32 to 3.32), 13.29 pp (scratch; 95% CI 13.29 to 13.29)." in reading
    # within 5 pp of R = 82: 80 − log2(x) ≥ 77 → x = 8; 78 − 4·log2(x) ≥ 77 → x = 2^(1/4) ≈ 1.19
    assert (
        "within 5 pp of the full-real model R (82.00%, i.e. at least 77.00%): 1/8.0 (transfer); 1/1.2 (scratch)."
        in (reading)
    )
    assert "f(8) = 83.60%" in reading and "by its fit 2.01 pp" in reading
    assert "here transfer loses 3.32 pp per tenfold reduction (1.49× the paper's)" in reading
    assert "R − transfer at 1/8 is 5.00 pp (paper 4.2 pp), its own cost at 1/8 is 3.00 pp" in reading


def test_reading_without_r_and_with_other_d():
    points, fits = reduction_points(RECORDS), reduction_fits(RECORDS)
    own = reduction_reading(points, fits, {})
    # within 5 pp of the arm's own x = 1 mean: 80 − log2(x) ≥ 75 → 32; 78 − 4·log2(x) ≥ 73 → 2^1.25 ≈ 2.38
    assert "R, the full-real model, is not in these results" in own
    assert "1/32.0 (transfer, own x = 1 mean 80.00%); 1/2.4 (scratch, own x = 1 mean 78.00%)." in own
    assert "R − transfer" not in own
    r = {"R": Summary(82.0, 0.0, 1)}
    strict = reduction_reading(points, fits, r, d=1.0)  # at least 81: neither fit gets there even at x = 1
    assert "not even all of it (transfer: the fit is 80.00% at x = 1)" in strict
    loose = reduction_reading(points, fits, r, d=10.0)  # at least 72: 80 − log2(x) ≥ 72 → x = 256
    assert "1/256.0 (transfer; extrapolated beyond the largest measured x = 64)" in loose


def test_reading_with_missing_arms_and_points():
    scratch_only = reduction_records(arms=("scratch",), xs=(1, 2, 4), r=False)
    reading = reduction_reading(reduction_points(scratch_only), reduction_fits(scratch_only), {})
    assert "No arm has runs at both x = 1 and x = 8" in reading
    assert "There is no fitted transfer arm here to compare with." in reading
    assert "13.29 pp (scratch; 95% CI 13.29 to 13.29)" in reading  # 4 pp per halving = 4 / log10(2) per decade
    single_x = reduction_records(arms=("transfer",), xs=(8,), r=False) + scratch_only
    points, fits = reduction_points(single_x), reduction_fits(single_x)
    assert "transfer" in points and "transfer" not in fits
    reading = reduction_reading(points, fits, {})
    assert "no fit for transfer (runs at fewer than two distinct x)" in reading
    assert "No arm has runs at both x = 1 and x = 8" in reading
    flat = [r.model_copy(update={"top1": 70.0}) for r in scratch_only]
    reading = reduction_reading(reduction_points(flat), reduction_fits(flat), {"R": Summary(72.0, 0.0, 1)})
    assert "any fraction (scratch: the fit does not decrease, a >= 0)" in reading
    assert reduction_reading({}, {}, {}) == "There are no data-reduction runs in these results."
    assert reduction_table_lines({}, {}) == []


def test_several_k_split_the_transfer_arm():
    records = RECORDS + [
        make_record(**{**r.model_dump(), "run": r.run + "-k12", "n_transferred": 12, "top1": r.top1 + 1})
        for r in RECORDS
        if r.kind == "data_reduction" and r.arm == "transfer"
    ]
    points = reduction_points(records)
    assert list(points) == ["transfer (k=16)", "transfer (k=12)", "scratch"]
    assert points["transfer (k=12)"][1].mean == pytest.approx(81.0)
    reading = reduction_reading(points, reduction_fits(records), layer_baselines(records))
    assert "Curves read: transfer (k=16)." in reading and "costs 3.00 pp (transfer (k=16)) vs 12.00 pp" in reading


def test_figures_are_pngs(tmp_path):
    points, fits = reduction_points(RECORDS), reduction_fits(RECORDS)
    fit_png = plot_reduction_fit(points["transfer"], fits["transfer"].fit, tmp_path / "a" / "fit.png")
    arms_png = plot_reduction_arms(
        points, {k: f.fit for k, f in fits.items()}, tmp_path / "b" / "arms.png", reference=Summary(82.0, 1.41, 2)
    )
    assert fit_png == tmp_path / "a" / "fit.png" and arms_png == tmp_path / "b" / "arms.png"
    for png in (fit_png, arms_png):
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 20_000


def test_build_report_has_the_data_reduction_section(tmp_path):
    for r in RECORDS:
        append_result(tmp_path, r)
    markdown = build_report(tmp_path).read_text()
    html = (tmp_path / "report.html").read_text()
    for name in ("reduction_fit.png", "reduction_arms.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:8] == PNG_MAGIC
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections == ["## Baselines: real (R) vs synthetic (S) training data", "## Data reduction", "## All runs"]
    assert "![Data reduction (Figure 3)](figures/reduction_fit.png)" in markdown
    assert "![Transfer vs scratch (Figure 4)](figures/reduction_arms.png)" in markdown
    assert "| 8 | 1/8 | 77.00 ± 1.41 | 66.00 ± 1.41 |" in markdown
    assert "| transfer | -3.32 [-3.32, -3.32] | 80.00 [79.00, 81.00] | 0.800 | 14 |" in markdown
    assert "1/8 of the real data costs 3.00 pp (transfer) vs 12.00 pp (scratch)." in markdown
    assert '<img src="figures/reduction_arms.png" alt="Transfer vs scratch (Figure 4)" />' in html


def test_no_reduction_section_without_reduction_runs(tmp_path):
    for r in RECORDS:
        if r.kind == "baseline":
            append_result(tmp_path, r)
    markdown = build_report(tmp_path).read_text()
    assert "## Data reduction" not in markdown and not (tmp_path / "figures").exists()
