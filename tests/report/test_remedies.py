"""The remedies section: shares of the gap per seed, intervals, real information used, the computed reading (with
the signs that flip), per-class changes, and the section in a built report."""

from __future__ import annotations

import pytest

from synthgap.experiments.results import append_result
from synthgap.report.build import build_report
from synthgap.report.remedies import interval, real_use, remedies, remedy_reading
from tests.report.records import make_record

CLASSES = ["cat", "dog"]


def baselines(seeds=(0, 1, 2)):
    out = []
    for seed in seeds:
        out.append(
            make_record(run=f"R{seed}", seed=seed, top1=60.0 + seed, per_class_top1=[60.0, 60.0], classes=CLASSES)
        )
        out.append(
            make_record(
                run=f"S{seed}",
                seed=seed,
                top1=40.0 + seed,
                side="synthetic",
                target="cifake:synthetic",
                per_class_top1=[40.0, 40.0],
                classes=CLASSES,
            )
        )
    return out


def distilled(seed, top1, per_class=(50.0, 30.0), **fields):
    return make_record(
        run=f"d{seed}",
        kind="distillation",
        seed=seed,
        top1=top1,
        side="synthetic",
        target="cifake:synthetic",
        temperature=4,
        alpha=0.9,
        teacher="R baseline x",
        per_class_top1=list(per_class),
        **fields,
    )


def curated(seed, top1, score="teacher_confidence", control=False):
    return make_record(
        run=f"c-{score}{seed}",
        kind="curation",
        seed=seed,
        top1=top1,
        side="synthetic",
        score="random" if control else score,
        keep=0.5,
        control=control,
    )


def test_the_share_is_paired_by_seed_and_the_interval_is_a_t_interval():
    records = [*baselines(), *(distilled(s, 50.0 + s) for s in range(3))]  # each seed: half its own gap
    (remedy,) = remedies(records)
    assert remedy.share.mean == pytest.approx(50.0) and remedy.share.low == pytest.approx(50.0)
    spread = interval([10.0, 20.0, 30.0])
    assert spread.mean == 20.0 and spread.high - spread.mean == pytest.approx(4.303 * 10.0 / 3**0.5, rel=1e-3)
    assert str(interval([5.0])) == "5.0 (1 seed)"


def test_real_information_comes_from_the_record_or_from_the_kind():
    assert real_use(distilled(0, 1.0, real_images_used=7)) == (0, 7)
    mixing = make_record(kind="ablation", ablation="mixing", mixing="share", real_images=250, variant="share0.5")
    assert real_use(mixing) == (250, 250)
    adabn = make_record(
        kind="ablation", ablation="normalization", normalization="imagenet", adabn=True, adabn_images=900, variant="x"
    )
    assert real_use(adabn) == (0, 900)


def test_the_reading_names_the_best_label_free_remedy_and_the_best_per_thousand_labels():
    mixing = [
        make_record(
            run=f"m{s}",
            kind="ablation",
            ablation="mixing",
            mixing="share",
            synthetic_share=0.5,
            variant="share0.5",
            seed=s,
            top1=55.0 + s,
            real_images=2000,
        )
        for s in range(3)
    ]
    records = [*baselines(), *(distilled(s, 45.0 + s) for s in range(3)), *mixing]
    text = remedy_reading(remedies(records), records)
    assert "The best remedy that uses no real label is distillation T=4 α=0.9: it closes 25.0 [25.0, 25.0] %" in text
    best = "mixing: 50 % of the images synthetic (same size as R's set)"
    assert f"Per thousand real labels, {best} buys most: +7.50 pp over S per 1,000 labels" in text


@pytest.mark.parametrize(
    ("curated_top1", "word"), [(50.0, "beats"), (40.0, "does not differ clearly from"), (30.0, "falls below")]
)
def test_curation_is_compared_with_its_control_in_either_direction(curated_top1, word):
    records = [
        *baselines((0, 1)),
        curated(0, curated_top1),
        curated(1, curated_top1 + 1),
        curated(0, 40.0, control=True),
        curated(1, 41.0, control=True),
    ]
    text = remedy_reading(remedies(records), records)
    assert f"curation teacher_confidence, keep 0.5 {word} its random control" in text


@pytest.mark.parametrize(("curated_top1", "side"), [(41.0, "above"), (39.0, "below"), (40.0, "level with")])
def test_with_one_seed_curation_is_not_said_to_beat_its_control(curated_top1, side):
    """One seed has no interval: a point's difference is told as above or below, never as a win."""
    records = [*baselines((0,)), curated(0, curated_top1), curated(0, 40.0, control=True)]
    text = remedy_reading(remedies(records), records)
    assert f"curation teacher_confidence, keep 0.5 is {side} its random control (" in text
    assert "one seed: no interval to tell)" in text and "beats" not in text


def test_the_section_lists_per_class_fixes_and_breaks_with_their_signs(tmp_path):
    for record in [*baselines(), *(distilled(s, 45.0) for s in range(3))]:
        append_result(tmp_path, record)
    markdown = build_report(tmp_path).read_text()
    assert "## Remedies: what closes the gap, at what price" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| distillation T=4 α=0.9 |"))
    assert "| cat (+10.0) | dog (-10.0) |" in row  # a gain is a fix, a loss a break
    assert (tmp_path / "figures" / "remedies.png").stat().st_size > 0


def no_gap_records(s_minus_r: float) -> list:
    """R at 8 % (seeds 0, 1) and S `s_minus_r` pp above it; curation by real_knn at 9 %, its control at 9.5 %."""
    records = []
    for seed in (0, 1):
        records.append(make_record(run=f"R{seed}", seed=seed, top1=8.0))
        records.append(
            make_record(run=f"S{seed}", seed=seed, top1=8.0 + s_minus_r, side="synthetic", target="cifake:synthetic")
        )
        records += [curated(seed, 9.0, score="real_knn"), curated(seed, 9.5, score="real_knn", control=True)]
    return records


@pytest.mark.parametrize(("s_minus_r", "gap"), [(1.0, "-1.00"), (0.0, "0.00")])
def test_without_a_positive_gap_no_share_is_computed_and_top1_is_compared(s_minus_r, gap, tmp_path):
    """S as good as or better than R: a share (top-1 − S) / (R − S) would flip its sign or divide by zero, so there
    is none; the reading says why, compares curation with its control by top-1, and the table has no share column."""
    records = no_gap_records(s_minus_r)
    found = remedies(records)
    assert all(m.share is None for m in found)
    text = remedy_reading(found, records)
    assert (
        f"S is as good as or better than R here (gap {gap} pp over 2 seed(s)): there is no gap to close, so no "
        "share of the gap is computed"
    ) in text
    assert "Without R and S baselines" not in text and "beats" not in text
    assert (
        "curation real_knn, keep 0.5 falls below its random control (top-1 9.0 [9.0, 9.0] vs 9.5 [9.5, 9.5] %)" in text
    )
    for record in records:
        append_result(tmp_path, record)
    markdown = build_report(tmp_path).read_text()
    assert "share of the gap closed" not in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| curation real_knn, keep 0.5 |"))
    assert row.startswith("| curation real_knn, keep 0.5 | 9.00 | 0 | 0 |")


def test_a_seed_where_s_matches_r_leaves_no_share_for_any_seed():
    """Shares averaged over the seeds with a gap would hide the seed without one: none is computed, and the reading
    names that seed."""
    records = [
        *baselines((0, 1)),
        make_record(run="R2", seed=2, top1=50.0),
        make_record(run="S2", seed=2, top1=50.5, side="synthetic", target="cifake:synthetic"),
        *(distilled(s, 50.0) for s in range(3)),
    ]
    found = remedies(records)
    assert all(m.share is None for m in found)
    text = remedy_reading(found, records)
    assert "S is as good as or better than R in seed(s) 2 (gap -0.50 pp there" in text
