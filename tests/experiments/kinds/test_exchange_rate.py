"""Exchange rate: the block's checks, counts refused before training (by --dry-run and run alike), the plan's names,
nested subsets, a tiny end-to-end run with its report section, a resume, and the exchange-rate arithmetic on
hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthgap.data.subsets import stratified_positions
from synthgap.errors import SynthgapError
from synthgap.experiments.kinds.exchange_rate import ExchangeRateBlock, ExchangeRateRecord, ExchangeRun, plan_runs
from synthgap.experiments.runner import run_experiment
from synthgap.report.build import build_report
from synthgap.report.exchange_rate import (
    FLAT_PP_PER_DOUBLING,
    curve_fits,
    curve_points,
    doubling_gains,
    exchange_at,
    exchange_rates,
    flattens_from,
)
from synthgap.report.fits import fit_log10
from tests.conftest import cifake_name
from tests.specs import tiny_spec
from tests.train.test_resume import Preempted, preempt_in_epoch

TINY_LADDERS = {"real_per_class": [1, 2], "synthetic_per_class": [1, 2]}  # the tiny spec holds 2 per class a side


def block(**changes) -> dict:
    return {"kind": "exchange_rate", **TINY_LADDERS, **changes}


# --- the block ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"real_per_class": [10]}, r"exchange_rate\.real_per_class: a ladder needs at least two distinct counts"),
        ({"synthetic_per_class": [5, 5]}, r"synthetic_per_class: a ladder needs at least two distinct counts"),
        ({"synthetic_per_class": []}, r"synthetic_per_class: a ladder needs at least two distinct counts"),
        ({"real_per_class": [0, 2]}, r"real_per_class: images per class must be at least 1, got \[0\]"),
        ({"schedule": "same_time"}, r"schedule: unknown value 'same_time'"),
        ({"mixing": "maybe"}, r"mixing"),
        ({"seeds": []}, r"seeds: must not be empty"),
    ],
)
def test_bad_settings_fail_when_the_spec_is_read(cifake_root, changes, message):
    with pytest.raises(SynthgapError, match=message):
        tiny_spec(cifake_root, [block(**changes)])


def test_a_ladder_is_kept_sorted_without_repeats():
    parsed = ExchangeRateBlock.model_validate(block(real_per_class=[25, 10, 25, 50]))
    assert parsed.real_per_class == [10, 25, 50]


def test_a_count_above_the_spec_per_class_is_refused_by_dry_run_and_run(cifake_root, tmp_path, capsys):
    """The bad-input spec holds 3 images per class a side: 4 synthetic ones cannot be had, in any class."""
    from tests.test_bad_inputs import assert_run_and_dry_run_reject, write_spec

    experiment = block(synthetic_per_class=[1, 4])
    spec = write_spec(tmp_path, cifake_root, {"experiments": [experiment]})
    expected = (
        "exchange_rate synthetic_per_class asks for 4 images per class, but the synthetic side (cifake:synthetic, "
        "train) has fewer in 10 class(es): airplane (3), automobile (3), bird (3), cat (3), deer (3) and 5 more"
    )
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", expected)


def test_a_short_class_is_named_with_its_count_before_anything_trains(cifake_root, tmp_path):
    """Without a per_class cut, the side's own class sizes decide; both sides' shortages are reported at once."""
    (cifake_root / "cifake" / "train" / "REAL" / cifake_name(10, 3)).unlink()  # cat: 2 real training images
    spec = tiny_spec(
        cifake_root,
        [block(real_per_class=[1, 3], synthetic_per_class=[2, 4])],
        data={"data_root": str(cifake_root), "per_class": None},
    )
    with pytest.raises(SynthgapError) as caught:
        run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "m", progress=False)
    message = str(caught.value)
    assert (
        "real_per_class asks for 3 images per class, but the real side (cifake:real, train) has fewer in "
        "1 class(es): cat (2)" in message
    )
    assert "synthetic_per_class asks for 4 images per class" in message and "airplane (3)" in message
    assert not (tmp_path / "out" / "results.jsonl").exists()


# --- the plan -------------------------------------------------------------------------------------------------------


def test_the_plan_names_every_setting_once():
    parsed = ExchangeRateBlock.model_validate(
        block(real_per_class=[10, 25], synthetic_per_class=[10, 50, 100], mixing=True, schedule="same_epochs")
    )
    runs = plan_runs(parsed, [0, 1])
    names = [r.name for r in runs]
    assert len(runs) == 2 * (2 + 3 + 2) and len(set(names)) == len(names)
    assert "exchange-real-pc25-s1-same_epochs" in names
    assert "exchange-synthetic-pc100-s0-same_epochs" in names
    assert "exchange-mix-pc10-s0-same_epochs" in names
    mix = next(r for r in runs if r.name == "exchange-mix-pc10-s0-same_epochs")
    assert (mix.side, mix.per_class, mix.mixed, mix.arm) == ("real", 10, True, "mix")
    assert len({r.settings().__repr__() for r in runs}) == len(runs)  # different settings, different names


def test_a_run_reads_its_side_and_a_mix_reads_both(cifake_root):
    spec = tiny_spec(cifake_root, [block()])
    real = ExchangeRun("r", 0, "real", 1).data_used(spec)
    synthetic = ExchangeRun("s", 0, "synthetic", 1).data_used(spec)
    mix = ExchangeRun("m", 0, "real", 1, mixed=True).data_used(spec)
    assert {k: u.ref for k, u in real.items()} == {"train": "cifake:real"}
    assert {k: u.ref for k, u in synthetic.items()} == {"train": "cifake:synthetic"}
    assert {k: u.ref for k, u in mix.items()} == {"train": "cifake:real", "synthetic": "cifake:synthetic"}


def test_rungs_of_one_seed_are_nested_and_stratified():
    labels = np.repeat(np.arange(4), 30)
    np.random.default_rng(0).shuffle(labels)
    classes = ("a", "b", "c", "d")
    previous: set[int] = set()
    for m in (1, 3, 10, 30):
        chosen = stratified_positions(labels, classes, per_class=m, seed=7)
        assert np.bincount(labels[chosen], minlength=4).tolist() == [m] * 4
        assert previous <= set(chosen.tolist())
        previous = set(chosen.tolist())


# --- end to end -----------------------------------------------------------------------------------------------------


def test_a_tiny_exchange_rate_experiment_writes_records_and_its_report_section(cifake_root, tmp_path):
    spec = tiny_spec(cifake_root, [block(mixing=True)], seeds=[0, 1])
    records = run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "m", progress=False)
    students = {r.run: r for r in records if isinstance(r, ExchangeRateRecord)}
    assert len(students) == 2 * 6
    real1, synthetic2 = students["exchange-real-pc1-s0-same_steps"], students["exchange-synthetic-pc2-s1-same_steps"]
    real1_counts = (real1.side, real1.per_class, real1.train_images, real1.real_images, real1.synthetic_images)
    assert real1_counts == ("real", 1, 10, 10, 0)
    # same steps: 20 images in batches of 4 make 5 steps an epoch; 10 images make 2, so 3 epochs
    assert real1.epochs == 3 and real1.target == "cifake:real"
    assert (synthetic2.side, synthetic2.train_images, synthetic2.epochs) == ("synthetic", 20, 1)
    mix = students["exchange-mix-pc1-s0-same_steps"]
    assert (mix.side, mix.train_images, mix.real_images, mix.synthetic_images) == ("mix", 30, 10, 20)
    assert mix.epochs == 1 and mix.target == "cifake:real+cifake:synthetic"  # keeps the synthetic set's 5 steps
    report = (build_report(tmp_path / "out")).read_text()
    assert "## Exchange rate: synthetic images per real image" in report
    assert "| images per class | real | synthetic | real m + all synthetic (20 synthetic images) |" in report
    assert "| real per class m | real top-1 (%) | synthetic per class s* | synthetic per real image s*/m |" in report
    assert "Where it flattens:" in report
    assert (tmp_path / "out" / "figures" / "exchange_rate.png").stat().st_size > 0


def test_a_killed_exchange_rate_run_resumes_to_the_same_student(cifake_root, tmp_path, monkeypatch):
    spec = tiny_spec(cifake_root, [block()])  # the first run, real 1 per class, trains for 3 epochs
    reference = run_experiment(spec, tmp_path / "ref", model_cache=tmp_path / "ref-models", progress=False)
    with monkeypatch.context() as patch:
        preempt_in_epoch(patch, 2)
        with pytest.raises(Preempted):
            run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "models", progress=False)
    resumed = run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "models", progress=False)
    assert {r.run: (r.top1, r.per_class_top1) for r in resumed} == {
        r.run: (r.top1, r.per_class_top1) for r in reference
    }


# --- the arithmetic -------------------------------------------------------------------------------------------------


def test_the_exchange_rate_is_read_where_the_synthetic_fit_reaches_the_real_top1():
    fit = fit_log10([10, 100, 1000], [40, 50, 60])  # 10 pp per tenfold: f(n) = 10·log10(n) + 30
    synthetic = {10: 40.0, 100: 50.0, 1000: 60.0}
    reached = exchange_at(fit, 55.0, 25, synthetic)
    assert reached.status == "reached" and reached.synthetic_per_class == pytest.approx(10**2.5)
    assert reached.rate == pytest.approx(10**2.5 / 25)
    beyond = exchange_at(fit, 65.0, 100, synthetic)  # f reaches 65 at 3162 per class: beyond the ladder
    assert (beyond.status, beyond.rate, beyond.reached) == ("beyond_ladder", None, False)
    assert beyond.gap_pp == pytest.approx(5.0)
    below = exchange_at(fit, 35.0, 10, synthetic)  # f reaches 35 at ~3 per class: the smallest rung bounds it
    assert below.status == "below_ladder" and below.rate == pytest.approx(1.0)


def test_a_flat_or_falling_synthetic_curve_reaches_nothing():
    synthetic = {10: 50.0, 100: 50.0}
    flat = exchange_at(fit_log10([10, 100], [50, 50]), 45.0, 10, synthetic)
    assert flat.status == "flat" and flat.rate is None and flat.gap_pp == pytest.approx(-5.0)
    falling = exchange_at(fit_log10([10, 100], [52, 48]), 60.0, 10, {10: 52.0, 100: 48.0})
    assert falling.status == "flat" and falling.gap_pp == pytest.approx(12.0)
    assert exchange_at(None, 60.0, 10, synthetic).status == "flat"
    huge = exchange_at(fit_log10([10, 100], [50.0, 50.001]), 90.0, 10, synthetic)  # s* = 10^40000: no overflow
    assert huge.status == "beyond_ladder"


def test_doubling_gains_and_where_the_curve_flattens():
    gains = doubling_gains({10: 40.0, 20: 46.0, 40: 50.0, 80: 50.5, 320: 51.0})
    assert [(g.low, g.high) for g in gains] == [(10, 20), (20, 40), (40, 80), (80, 320)]
    assert [g.gain_pp for g in gains] == pytest.approx([6.0, 4.0, 0.5, 0.25])  # 80 → 320 is two doublings
    assert flattens_from(gains) == 40
    assert flattens_from(gains[:2]) is None
    assert flattens_from(doubling_gains({1: 50.0, 2: 50.0})) == 1
    assert FLAT_PP_PER_DOUBLING == 1.0


def _record(side: str, per_class: int, seed: int, top1: float) -> ExchangeRateRecord:
    return ExchangeRateRecord(
        run=f"exchange-{side}-pc{per_class}-s{seed}",
        seed=seed,
        side=side,
        target="t",
        per_class=per_class,
        epochs=1,
        top1=top1,
        top5=100.0,
        train_images=per_class * 10,
        seconds=1.0,
    )


def test_curves_fits_and_rates_from_records_of_two_seeds():
    records = []
    for seed, noise in ((0, -0.5), (1, 0.5)):
        records += [_record("real", m, seed, 20 * math.log10(m) + 20 + noise) for m in (10, 100)]
        records += [_record("synthetic", s, seed, 10 * math.log10(s) + 20 + noise) for s in (10, 100, 1000, 10000)]
    points = curve_points(records)
    assert list(points) == ["real", "synthetic"] and points["real"][100].n == 2
    assert points["real"][100].mean == pytest.approx(60.0)
    fits = curve_fits(records, n_boot=200)
    assert fits["synthetic"].fit.a == pytest.approx(10.0) and fits["synthetic"].n_seeds == 2
    rates = exchange_rates(points, fits)
    assert [r.status for r in rates] == ["reached", "reached"]  # 40 % at s = 100 and 60 % at s = 10000
    assert [r.rate for r in rates] == pytest.approx([10.0, 100.0])
