"""Log-linear fits for the data-reduction curves (the paper's Figure 3): f(x) = a·log10(x) + b.

x is the divisor of the real training data (the student saw a fraction 1/x of it), y the top-1 in percent, so a is
the change in top-1 per tenfold reduction of the real data (negative when less data hurts) and b the fitted top-1
with all of it (x = 1). Pure numpy; nothing here reads files or draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_LEVEL = 95.0  # percent; bootstrap_fit returns the central percentile interval of this coverage
# Below this R² a fit does not describe its points: nothing is read from it beyond the measured range.
RELIABLE_R2 = 0.5


@dataclass(frozen=True)
class LogFit:
    a: float  # pp of top-1 per tenfold reduction of the real data (slope on log10 x)
    b: float  # fitted top-1 at x = 1 (all real data)
    r2: float  # coefficient of determination on the fitted points; 1.0 when every y is the same
    n_points: int

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.a * np.log10(x) + self.b

    def equation(self) -> str:
        """'f(x) = -2.23·log10(x) + 85.61' (two decimals)."""
        return f"f(x) = {self.a:.2f}·log10(x) {'-' if self.b < 0 else '+'} {abs(self.b):.2f}"


def fit_log10(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> LogFit:
    """Least squares of y on log10(x). Needs at least two distinct x (all > 0) and as many y as x."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"fit_log10 needs as many y as x, got {x.size} x and {y.size} y")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(x <= 0):
        raise ValueError("fit_log10 needs finite y and finite x > 0")
    if np.unique(x).size < 2:
        raise ValueError(f"fit_log10 needs points at two or more distinct x, got x = {sorted(set(x.tolist()))}")
    u = np.log10(x)
    du, dy = u - u.mean(), y - y.mean()
    a = float(du @ dy / (du @ du))
    b = float(y.mean() - a * u.mean())
    ss_res = float(np.sum((y - (a * u + b)) ** 2))
    ss_tot = float(dy @ dy)
    r2 = 1.0 if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return LogFit(a=a, b=b, r2=r2, n_points=int(x.size))


def bootstrap_fit(
    points_by_seed: Mapping[int, Sequence[tuple[float, float]]], n_boot: int = 2000, seed: int = 0
) -> tuple[tuple[float, float], tuple[float, float]]:
    """95% percentile intervals ((a_lo, a_hi), (b_lo, b_hi)) from resampling SEEDS with replacement.

    Each bootstrap sample draws as many seeds as there are, with replacement, and refits `fit_log10` on the union of
    the drawn seeds' (x, y) points (a seed drawn twice counts twice). Samples whose union has fewer than two distinct
    x are skipped. Deterministic for a given `seed` (seeds are taken in sorted order).

    With a single seed there is nothing to resample: the intervals are degenerate, (a, a) and (b, b) of that seed's
    fit, and say nothing about uncertainty. Raises ValueError with no seeds or when no sample can be fitted.
    """
    seeds = sorted(points_by_seed)
    if not seeds:
        raise ValueError("bootstrap_fit needs at least one seed")
    if len(seeds) == 1:
        fit = fit_log10(*_xy(points_by_seed[seeds[0]]))
        return (fit.a, fit.a), (fit.b, fit.b)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    # Sufficient statistics per seed on centred data (centring keeps the sums well conditioned), so a sample's
    # least-squares fit is a count-weighted sum: a = S_uy / S_uu with S_.. the centred co-moments.
    all_x, all_y = _xy([p for s in seeds for p in points_by_seed[s]])
    u0, y0 = float(np.log10(all_x).mean()), float(all_y.mean())
    stats = np.zeros((len(seeds), 5))  # n, Σu, Σy, Σu², Σuy (u, y centred)
    for i, s in enumerate(seeds):
        x, y = _xy(points_by_seed[s])
        u, v = np.log10(x) - u0, y - y0
        stats[i] = (u.size, u.sum(), v.sum(), u @ u, u @ v)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
    counts = np.stack([np.bincount(row, minlength=len(seeds)) for row in draws])
    n, su, sy, suu, suy = (counts @ stats).T
    with np.errstate(divide="ignore", invalid="ignore"):
        s_uu = suu - su * su / n
        s_uy = suy - su * sy / n
        ok = s_uu > 1e-12 * np.maximum(suu, 1e-300)  # at least two distinct x among the drawn points
        a = s_uy[ok] / s_uu[ok]
        b = (sy[ok] - a * su[ok]) / n[ok] + y0 - a * u0
    if a.size == 0:
        raise ValueError("bootstrap_fit: no resample had points at two distinct x")
    tail = (100.0 - BOOTSTRAP_LEVEL) / 2
    a_lo, a_hi = np.percentile(a, [tail, 100.0 - tail])
    b_lo, b_hi = np.percentile(b, [tail, 100.0 - tail])
    return (float(a_lo), float(a_hi)), (float(b_lo), float(b_hi))


def fraction_needed(fit: LogFit, reference: float, d: float) -> float | None:
    """The largest x with fit(x) >= reference − d: real data can shrink to a fraction 1/x and stay within d pp.

    Closed form: a·log10(x) + b >= reference − d ⇔ x <= 10 ** ((reference − d − b) / a) for a < 0.
    Returns None when a >= 0 (the fit does not decrease, so no smallest fraction follows from it).
    Returns 1.0 when the fit is already more than d pp below `reference` at x = 1 (all real data): callers that
    must tell "exactly x = 1" from "not even with all the data" compare fit(1) with reference − d themselves.
    The value is continuous (not rounded to a measured x) and may lie beyond the measured range.
    """
    if fit.a >= 0:
        return None
    threshold = reference - d
    if fit.b < threshold:
        return 1.0
    return float(10.0 ** ((threshold - fit.b) / fit.a))


def _xy(points: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(points, dtype=float).reshape(-1, 2)
    return array[:, 0], array[:, 1]
