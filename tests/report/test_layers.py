"""Layer-wise transfer report: known numbers in, known table / reading / figure out."""

import math

import pytest

from synthgap.experiments.results import append_result
from synthgap.report.build import build_report
from synthgap.report.figures import plot_layer_sweep
from synthgap.report.layers import gap_reading, layer_baselines, layer_sweep, layer_table_lines
from synthgap.report.tables import Summary
from tests.report.records import make_record, transfer_record

REAL, SYNTH = "cifake:real", "cifake:synthetic"
DATA = {"real": REAL, "synthetic": SYNTH}
NOISE = {0: +1.0, 1: -1.0}  # two seeds at mean ± 1 → sample std √2
SQRT2 = math.sqrt(2)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def s2r_mean(n):  # synthetic layers 1..N, real rest: from R = 80 down by 1 pp per layer
    return 80.0 - n


def r2s_mean(n):  # real layers 1..N, synthetic rest: 64 at N = 1, equals S = 60 at N = 5, below from N = 6
    return 65.0 - n


def baseline(side, seed, top1, **family):
    return make_record(run=f"{side}-{seed}", target=DATA[side], side=side, seed=seed, top1=top1, **family)


def transfer(source_side, side, n, seed, top1, **fields):
    """Layers 1..n from the `source_side` baseline, the rest trained on `side`."""
    return transfer_record(
        n,
        top1,
        source_side=source_side,
        run=f"{source_side}-{side}-{n}-{seed}",
        source=DATA[source_side],
        target=DATA[side],
        side=side,
        seed=seed,
        **fields,
    )


def sweep_records(seeds=(0, 1), directions=("s2r", "r2s"), baselines=True, **extra):
    out = []
    for seed in seeds:
        noise = NOISE[seed] if len(seeds) > 1 else 0.0
        if baselines:
            out += [baseline("real", seed, 80.0 + noise), baseline("synthetic", seed, 60.0 + noise)]
        for n in range(1, 18):
            if "s2r" in directions:
                out.append(transfer("synthetic", "real", n, seed, s2r_mean(n) + noise, **extra))
            if "r2s" in directions:
                out.append(transfer("real", "synthetic", n, seed, r2s_mean(n) + noise, **extra))
    return out


RECORDS = sweep_records()


def test_sweep_means_and_stds_per_direction_and_n():
    sweep = layer_sweep(RECORDS)
    assert list(sweep) == ["synthetic→real", "real→synthetic"]
    for key, mean in (("synthetic→real", s2r_mean), ("real→synthetic", r2s_mean)):
        assert list(sweep[key]) == list(range(1, 18))
        for n, summary in sweep[key].items():
            assert summary.mean == pytest.approx(mean(n))
            assert summary.std == pytest.approx(SQRT2)
            assert summary.n == 2
    baselines = layer_baselines(RECORDS)
    assert (baselines["R"].mean, baselines["S"].mean) == (80.0, 60.0)


def test_variants_get_keys_only_when_several_are_present():
    explicit_defaults = sweep_records(rest="reinit", frozen_bn="eval")
    assert list(layer_sweep(explicit_defaults + RECORDS)) == ["synthetic→real", "real→synthetic"]
    reestimated = [
        make_record(**{**r.model_dump(), "run": r.run + "-re", "top1": r.top1 - 5, "frozen_bn": "reestimate"})
        for r in RECORDS
    ]
    sweep = layer_sweep(reestimated + RECORDS)
    assert list(sweep) == [
        "synthetic→real (BN eval)",
        "synthetic→real (BN reestimate)",
        "real→synthetic (BN eval)",
        "real→synthetic (BN reestimate)",
    ]
    assert sweep["synthetic→real (BN reestimate)"][3].mean == pytest.approx(72.0)
    assert sweep["synthetic→real (BN eval)"][3].n == 2  # defaults and reestimate never mix
    reading = gap_reading(sweep, layer_baselines(RECORDS))
    assert "Curves read: synthetic→real (BN eval) and real→synthetic (BN eval)." in reading


def test_table_rows():
    lines = layer_table_lines(layer_sweep(RECORDS), layer_baselines(RECORDS))
    assert "mean ± sample std over 2 seeds" in lines[0]
    assert lines[2] == "| N | synthetic→real | real→synthetic |"
    assert lines[3] == "|---|---|---|"
    assert lines[4] == "| 1 | 79.00 ± 1.41 | 64.00 ± 1.41 |"
    assert lines[4 + 11] == "| 12 | 68.00 ± 1.41 | 53.00 ± 1.41 |"
    assert lines[4 + 16] == "| 17 | 63.00 ± 1.41 | 48.00 ± 1.41 |"
    assert lines[-2:] == [
        "| R (real, from scratch) | 80.00 ± 1.41 | 80.00 ± 1.41 |",
        "| S (synthetic, from scratch) | 60.00 ± 1.41 | 60.00 ± 1.41 |",
    ]


def test_table_marks_cells_with_an_unusual_seed_count():
    lines = layer_table_lines(layer_sweep(RECORDS[:-1]), layer_baselines(RECORDS))
    assert lines[-3] == "| 17 | 63.00 ± 1.41 | 49.00 (n=1) |"


def test_reading_numbers():
    reading = gap_reading(layer_sweep(RECORDS), layer_baselines(RECORDS))
    assert "\n" not in reading
    assert "a gap R − S of 20.00 pp" in reading
    assert "Values are means over up to 2 seeds." in reading
    # recovered = (80 − N − 60) / 20
    assert "60% at N = 8, 40% at N = 12, 20% at N = 16, 15% at N = 17." in reading
    # half the gap below R: under 70, i.e. 80 − N < 70 from N = 11
    assert "Synthetic→real falls more than half the gap below R (under 70.00%) from N = 11 on." in reading
    assert "Real→synthetic drops below S from N = 6 on; its best point is 64.00% at N = 1 (+4.00 pp over S)." in (
        reading
    )
    assert "must still recover at least 50% of the gap; it recovers 40%, so these results do not match" in reading


def test_reading_matches_the_paper_when_the_drop_is_in_the_final_layers():
    late_drop = {n: Summary(79.0 if n <= 12 else 62.0, 0.0, 1) for n in range(1, 18)}
    baselines = {"R": Summary(80.0, 0.0, 1), "S": Summary(60.0, 0.0, 1)}
    reading = gap_reading({"synthetic→real": late_drop}, baselines)
    assert "it recovers 95%, so these results match that finding." in reading
    assert "(under 70.00%) from N = 13 on." in reading
    assert "Every value is a single seed." in reading
    assert "Real→synthetic" not in reading


def test_reading_never_below_and_dips_that_recover():
    baselines = {"R": Summary(80.0, 0.0, 1), "S": Summary(60.0, 0.0, 1)}
    flat = {n: Summary(75.0, 0.0, 1) for n in range(1, 18)}
    dip = {n: Summary(59.0 if n == 4 else 61.0, 0.0, 1) for n in range(1, 18)}
    reading = gap_reading({"synthetic→real": flat, "real→synthetic": dip}, baselines)
    assert "Synthetic→real never falls more than half the gap below R (under 70.00%)." in reading
    assert "Real→synthetic drops below S first at N = 4 (not at every larger N)" in reading


def test_reading_without_baselines_or_without_a_gap():
    sweep = layer_sweep(RECORDS)
    reading = gap_reading(sweep, {})
    assert "no R/S baselines" in reading and "cannot be decided here" in reading
    assert "Synthetic→real goes from 79.00% at N = 1 to 63.00% at N = 17." in reading
    only_r = gap_reading(sweep, {"R": Summary(80.0, 0.0, 1)})
    assert "Only the R baseline (80.00%)" in only_r and "Real→synthetic goes from 64.00%" in only_r
    inverted = gap_reading(sweep, {"R": Summary(60.0, 0.0, 1), "S": Summary(80.0, 0.0, 1)})
    assert "S is not below R, so there is no gap to locate." in inverted and "cannot be decided here" in inverted


def test_one_direction_single_seed(tmp_path):
    records = sweep_records(seeds=(0,), directions=("s2r",))
    sweep = layer_sweep(records)
    assert list(sweep) == ["synthetic→real"]
    assert sweep["synthetic→real"][5] == Summary(75.0, 0.0, 1)
    baselines = layer_baselines(records)
    lines = layer_table_lines(sweep, baselines)
    assert "single seed" in lines[0]
    assert lines[2] == "| N | synthetic→real |" and "| 5 | 75.00 |" in lines
    assert lines[-2:] == ["| R (real, from scratch) | 80.00 |", "| S (synthetic, from scratch) | 60.00 |"]
    reading = gap_reading(sweep, baselines)
    assert "Every value is a single seed." in reading and "40% at N = 12" in reading
    assert "Real→synthetic" not in reading
    png = plot_layer_sweep(sweep, {}, tmp_path / "deep" / "one.png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    for r in records:
        append_result(tmp_path, r)
    markdown = build_report(tmp_path).read_text()
    assert "## Layer-wise transfer" in markdown and "| 17 | 63.00 |" in markdown


def test_figure_is_a_png(tmp_path):
    path = plot_layer_sweep(layer_sweep(RECORDS), layer_baselines(RECORDS), tmp_path / "new" / "sweep.png")
    assert path == tmp_path / "new" / "sweep.png"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 20_000


def test_build_report_embeds_the_figure_and_section(tmp_path):
    for r in RECORDS:
        append_result(tmp_path, r)
    markdown = build_report(tmp_path).read_text()
    html = (tmp_path / "report.html").read_text()
    png = tmp_path / "figures" / "layer_sweep.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Baselines: real (R) vs synthetic (S) training data",
        "## Layer-wise transfer",
        "## All runs",
    ]
    assert "![Layer-wise transfer (Figure 2)](figures/layer_sweep.png)" in markdown
    assert "| 12 | 68.00 ± 1.41 | 53.00 ± 1.41 |" in markdown
    assert "40% at N = 12" in markdown
    assert '<img src="figures/layer_sweep.png" alt="Layer-wise transfer (Figure 2)" />' in html


def test_no_layer_section_without_layer_transfer_runs(tmp_path):
    for r in RECORDS:
        if r.kind == "baseline":
            append_result(tmp_path, r)
    markdown = build_report(tmp_path).read_text()
    assert "Layer-wise" not in markdown and not (tmp_path / "figures").exists()


def test_reading_also_uses_the_same_recipe_references_at_n0():
    sweep = {
        "synthetic→real": {0: Summary(50, 0, 1), 8: Summary(45, 0, 1)},
        "real→synthetic": {0: Summary(30, 0, 1), 8: Summary(32, 0, 1)},
    }
    text = gap_reading(sweep, {"R": Summary(40, 0, 1), "S": Summary(20, 0, 1)})
    assert "125% at N = 8" in text  # (45 − 20) / (40 − 20) against the augmented baselines
    assert "real 50.00%, synthetic 30.00%, a gap of 20.00 pp), the shares are 75% at N = 8." in text
