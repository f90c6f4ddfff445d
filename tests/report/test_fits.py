"""Log-linear fits f(x) = a·log10(x) + b: exact and noisy recovery, seed bootstrap, fraction of real data needed."""

import math

import numpy as np
import pytest

from synthgap.report.fits import LogFit, bootstrap_fit, fit_log10, fraction_needed

A, B = -2.23, 85.61  # the paper's fit
XS = np.array([1, 2, 4, 8, 16, 32, 64], dtype=float)


def truth(x):
    return A * np.log10(x) + B


def noisy_seeds(n_seeds=6, sd=0.5, seed_sd=0.3, rng_seed=1):
    """Per seed: a seed-level offset plus independent noise on every point."""
    rng = np.random.default_rng(rng_seed)
    out = {}
    for s in range(n_seeds):
        offset = rng.normal(0.0, seed_sd)
        out[s] = [(float(x), float(truth(x) + offset + rng.normal(0.0, sd))) for x in XS]
    return out


def test_noiseless_points_give_the_exact_fit_and_r2_one():
    fit = fit_log10(XS, truth(XS))
    assert fit.a == pytest.approx(A, abs=1e-10)
    assert fit.b == pytest.approx(B, abs=1e-10)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.n_points == 7
    assert fit(8) == pytest.approx(B + A * math.log10(8))
    assert fit.equation() == "f(x) = -2.23·log10(x) + 85.61"


def test_noisy_points_give_an_approximate_fit():
    points = [p for pts in noisy_seeds().values() for p in pts]
    fit = fit_log10([x for x, _ in points], [y for _, y in points])
    assert fit.a == pytest.approx(A, abs=0.3)
    assert fit.b == pytest.approx(B, abs=0.4)
    assert 0.5 < fit.r2 < 1.0
    assert fit.n_points == 42


def test_r2_of_a_known_scatter():
    # two points per x at truth ± 1: residuals all 1 (SS_res = 14), SS_tot = 14 + 2 · Σ (truth − mean)².
    ys = np.concatenate([truth(XS) + 1, truth(XS) - 1])
    fit = fit_log10(np.concatenate([XS, XS]), ys)
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    assert fit.a == pytest.approx(A) and fit.b == pytest.approx(B)
    assert fit.r2 == pytest.approx(1 - 14 / ss_tot)


def test_fewer_than_two_distinct_x_or_bad_input_is_an_error():
    with pytest.raises(ValueError, match="two or more distinct x"):
        fit_log10([4, 4, 4], [70.0, 71.0, 72.0])
    with pytest.raises(ValueError, match="two or more distinct x"):
        fit_log10([], [])
    with pytest.raises(ValueError, match="as many y as x"):
        fit_log10([1, 2], [70.0])
    with pytest.raises(ValueError, match="x > 0"):
        fit_log10([0, 2], [70.0, 71.0])


def test_bootstrap_ci_contains_the_truth_and_is_deterministic():
    points = noisy_seeds()
    ci_a, ci_b = bootstrap_fit(points, n_boot=2000, seed=0)
    assert ci_a[0] < A < ci_a[1] and ci_a[1] - ci_a[0] < 1.0
    assert ci_b[0] < B < ci_b[1] and ci_b[1] - ci_b[0] < 1.5
    assert bootstrap_fit(points, n_boot=2000, seed=0) == (ci_a, ci_b)
    assert bootstrap_fit(points, n_boot=2000, seed=1) != (ci_a, ci_b)


def test_bootstrap_resamples_seeds_not_points():
    # Seed 0 is the truth + 1 everywhere, seed 1 the truth − 1: every resample has the true slope, and the
    # intercept is B + 1 (both draws seed 0), B (one each) or B − 1, each extreme with probability 1/4.
    # Resampling single points instead would give a narrower interval for b.
    points = {0: [(x, float(truth(x) + 1)) for x in XS], 1: [(x, float(truth(x) - 1)) for x in XS]}
    ci_a, ci_b = bootstrap_fit(points, n_boot=400, seed=3)
    assert ci_a == pytest.approx((A, A))
    assert ci_b == pytest.approx((B - 1, B + 1))


def test_bootstrap_with_one_seed_is_degenerate():
    points = {7: [(x, float(truth(x))) for x in XS]}
    ci_a, ci_b = bootstrap_fit(points)
    assert ci_a == pytest.approx((A, A)) and ci_b == pytest.approx((B, B))
    with pytest.raises(ValueError, match="at least one seed"):
        bootstrap_fit({})


def test_bootstrap_skips_resamples_with_a_single_x():
    # Seed 1 only ran x = 1: resamples that draw it twice cannot be fitted and are skipped, not NaN.
    points = {0: [(x, float(truth(x))) for x in XS], 1: [(1.0, B)]}
    ci_a, ci_b = bootstrap_fit(points, n_boot=200, seed=0)
    assert ci_a == pytest.approx((A, A)) and ci_b == pytest.approx((B, B))
    with pytest.raises(ValueError, match="two distinct x"):
        bootstrap_fit({0: [(1.0, 80.0)], 1: [(1.0, 81.0)]}, n_boot=10)


def test_fraction_needed_closed_form():
    fit = LogFit(a=-2.0, b=80.0, r2=1.0, n_points=7)
    assert fraction_needed(fit, 80.0, 4.0) == pytest.approx(100.0)  # −2·log10(x) ≥ −4
    assert fraction_needed(fit, 75.0, 1.0) == pytest.approx(1000.0)  # 80 − 2·log10(x) ≥ 74
    assert fit(fraction_needed(fit, 82.0, 3.0)) == pytest.approx(79.0)
    # the paper: R = 87.8 and 4.2 pp lost at 1/8 are consistent with its fit
    paper = LogFit(a=A, b=B, r2=1.0, n_points=7)
    assert fraction_needed(paper, 87.8, 4.2) == pytest.approx(8.0, rel=0.01)


def test_fraction_needed_without_a_decrease_or_already_below():
    assert fraction_needed(LogFit(a=0.0, b=80.0, r2=1.0, n_points=7), 80.0, 5.0) is None
    assert fraction_needed(LogFit(a=0.5, b=80.0, r2=1.0, n_points=7), 80.0, 5.0) is None
    assert fraction_needed(LogFit(a=-2.0, b=80.0, r2=1.0, n_points=7), 90.0, 5.0) == 1.0  # 80 < 85 at x = 1
