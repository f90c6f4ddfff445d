"""The exchange-rate section: how many synthetic images one real image is worth.

Each side's top-1 is fitted against its images per class n as f(n) = a·log10(n) + b (`fits.fit_log10`, pooled over
seeds, with percentile-bootstrap intervals over seeds). At a real rung m with measured mean top-1 y, the exchange
rate is s*/m, where s* is the synthetic count at which the synthetic fit reaches y. s* is read only inside the
measured synthetic ladder: beyond its largest rung the rate is "not reached" (with the measured gap there), below its
smallest rung it is a bound, and a synthetic fit that does not rise (a ≤ 0) reaches nothing.

The pure computations (`curve_points`, `curve_fits`, `exchange_at`, `doubling_gains`, `flattens_from`) take plain
numbers; the section and its figure are built from them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from synthgap.experiments.kinds.exchange_rate import ExchangeRateRecord
from synthgap.experiments.results import ResultRecord
from synthgap.report.fits import BOOTSTRAP_LEVEL, RELIABLE_R2, LogFit, bootstrap_fit, fit_log10
from synthgap.report.palette import GREEN, R_COLOR, S_COLOR, seeds_phrase, spread_note
from synthgap.report.reduction import ArmFit
from synthgap.report.sections import Scope, section
from synthgap.report.tables import Summary, summarize
from synthgap.report.text import figure_text, md_text

ARMS = ("real", "synthetic", "mix")  # table, fit and figure order
ARM_LABELS = {"real": "real", "synthetic": "synthetic", "mix": "real m + all synthetic"}
ARM_STYLES = {"real": (R_COLOR, "o"), "synthetic": (S_COLOR, "s"), "mix": (GREEN, "^")}
DEFAULT_SCHEDULE = "same_steps"
# A measured doubling of synthetic images that gains less than this (pp of top-1) counts as flat: about the
# seed-to-seed spread of a small student's top-1, so smaller gains are not told apart from noise.
FLAT_PP_PER_DOUBLING = 1.0
LOG10_2 = math.log10(2)
SCHEDULES = {
    "same_steps": "every rung gets the optimiser steps its side's whole training set gets in the recipe's epochs "
    "(smaller rungs see more epochs; a mix keeps the synthetic set's steps), so a curve measures data, not training",
    "same_epochs": "every rung gets the recipe's epochs, so smaller rungs also take fewer optimiser steps",
}

Status = Literal["reached", "below_ladder", "beyond_ladder", "flat"]


@dataclass(frozen=True)
class Exchange:
    """What the synthetic curve says about one real rung."""

    real_per_class: int  # m
    real_top1: float  # measured mean top-1 at m
    status: Status
    # s*: where the synthetic fit reaches real_top1 (reached); the smallest synthetic rung, an upper bound
    # (below_ladder); None otherwise
    synthetic_per_class: float | None
    gap_pp: float  # real_top1 minus the measured synthetic mean at the largest synthetic rung
    largest_synthetic: int
    smallest_synthetic: int

    @property
    def rate(self) -> float | None:
        """Synthetic images per real image, s*/m (an upper bound when below the ladder; None when not reached)."""
        return None if self.synthetic_per_class is None else self.synthetic_per_class / self.real_per_class

    @property
    def reached(self) -> bool:
        return self.status in ("reached", "below_ladder")


def exchange_at(fit: LogFit | None, real_top1: float, real_per_class: int, synthetic: Mapping[int, float]) -> Exchange:
    """The exchange rate at one real rung: the synthetic count s* with fit(s*) = `real_top1`, read only inside the
    measured synthetic ladder (`synthetic`: rung → measured mean top-1)."""
    smallest, largest = min(synthetic), max(synthetic)
    gap = real_top1 - synthetic[largest]

    def result(status: Status, count: float | None) -> Exchange:
        return Exchange(real_per_class, real_top1, status, count, gap, largest, smallest)

    if fit is None or fit.a <= 0:
        return result("flat", None)
    u = (real_top1 - fit.b) / fit.a  # log10 of s*; compared in logs, so a steep miss never overflows 10**u
    if u > math.log10(largest):
        return result("beyond_ladder", None)
    if u < math.log10(smallest):
        return result("below_ladder", float(smallest))
    return result("reached", 10.0**u)


@dataclass(frozen=True)
class Doubling:
    low: int
    high: int
    gain_pp: float  # measured top-1 change per doubling of images between the two rungs


def doubling_gains(curve: Mapping[int, float]) -> list[Doubling]:
    """Measured top-1 gain per doubling between consecutive rungs (rungs need not be a factor 2 apart)."""
    rungs = sorted(curve)
    return [Doubling(lo, hi, (curve[hi] - curve[lo]) / math.log2(hi / lo)) for lo, hi in pairwise(rungs)]


def flattens_from(gains: list[Doubling], threshold: float = FLAT_PP_PER_DOUBLING) -> int | None:
    """The smallest rung from which every later measured step gains less than `threshold` pp per doubling; None when
    the last step still gains that much (the curve has not flattened within the ladder)."""
    start = None
    for step in reversed(gains):
        if step.gain_pp >= threshold:
            break
        start = step.low
    return start


def exchange_records(records: Iterable[ResultRecord]) -> list[ExchangeRateRecord]:
    return [r for r in records if isinstance(r, ExchangeRateRecord)]


def by_schedule(records: Iterable[ResultRecord]) -> dict[str, list[ExchangeRateRecord]]:
    """Exchange-rate records per schedule, the default schedule first: curves of different schedules are different
    experiments and are never pooled."""
    groups: dict[str, list[ExchangeRateRecord]] = defaultdict(list)
    for r in exchange_records(records):
        groups[r.schedule].append(r)
    return {k: groups[k] for k in sorted(groups, key=lambda s: (s != DEFAULT_SCHEDULE, s))}


def _seed_points(records: list[ExchangeRateRecord], arm: str) -> dict[int, list[tuple[float, float]]]:
    by_seed: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        if r.side == arm:
            by_seed[r.seed].append((float(r.per_class), r.top1))
    return by_seed


def curve_points(records: Iterable[ResultRecord]) -> dict[str, dict[int, Summary]]:
    """Top-1 over seeds per rung for each curve present: {arm: {images per class: Summary}}, rungs ascending."""
    points: dict[str, dict[int, Summary]] = {}
    for arm in ARMS:
        by_rung: dict[int, list[float]] = defaultdict(list)
        for r in exchange_records(records):
            if r.side == arm:
                by_rung[r.per_class].append(r.top1)
        if by_rung:
            points[arm] = {n: summarize(by_rung[n]) for n in sorted(by_rung)}
    return points


def curve_fits(records: Iterable[ResultRecord], n_boot: int = 2000, seed: int = 0) -> dict[str, ArmFit]:
    """`fit_log10` of top-1 on images per class per curve over every seed's runs, with bootstrap intervals over
    seeds; curves with runs at fewer than two distinct counts are left out."""
    chosen = exchange_records(records)
    fits: dict[str, ArmFit] = {}
    for arm in ARMS:
        by_seed = _seed_points(chosen, arm)
        points = [p for seed_points in by_seed.values() for p in seed_points]
        if len({x for x, _ in points}) < 2:
            continue
        fit = fit_log10([x for x, _ in points], [y for _, y in points])
        ci_a, ci_b = bootstrap_fit(by_seed, n_boot=n_boot, seed=seed)
        fits[arm] = ArmFit(fit, ci_a, ci_b, n_seeds=len(by_seed), n_boot=n_boot)
    return fits


def exchange_rates(points: Mapping[str, Mapping[int, Summary]], fits: Mapping[str, ArmFit]) -> list[Exchange]:
    """`exchange_at` for every real rung (none without both a real and a synthetic curve)."""
    if "real" not in points or "synthetic" not in points:
        return []
    synthetic = {n: s.mean for n, s in points["synthetic"].items()}
    fit = fits["synthetic"].fit if "synthetic" in fits else None
    return [exchange_at(fit, s.mean, m, synthetic) for m, s in points["real"].items()]


# --- text -----------------------------------------------------------------------------------------------------------


def _count(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _rate(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def exchange_cells(exchange: Exchange) -> tuple[str, str]:
    """(s* cell, s*/m cell) of the exchange table."""
    if exchange.status == "reached":
        return _count(exchange.synthetic_per_class), _rate(exchange.rate)
    if exchange.status == "below_ladder":
        return f"≤ {exchange.smallest_synthetic} (below the ladder)", f"≤ {_rate(exchange.rate)}"
    why = "the synthetic fit does not rise" if exchange.status == "flat" else "beyond the ladder"
    return f"not reached ({why}; {gap_text(exchange)})", "not reached"


def gap_text(exchange: Exchange) -> str:
    """The measured gap at the largest synthetic rung, in words that fit its sign (a flat synthetic curve may sit
    level with or above a real rung and still reach nothing by its fit)."""
    gap, where = exchange.gap_pp, f"at {exchange.largest_synthetic} per class"
    if round(gap, 2) == 0:
        return f"level with the real top-1 {where}"
    return f"{gap:.2f} pp short {where}" if gap > 0 else f"{-gap:.2f} pp above the real top-1 {where}"


def points_table(points: Mapping[str, Mapping[int, Summary]], mix_synthetic: int | None) -> list[str]:
    arms = list(points)
    summaries = [s for curve in points.values() for s in curve.values()]
    spread = f"mean ± sample std over {seeds_phrase(summaries)}" if max(s.n for s in summaries) > 1 else "single seed"
    heads = [
        ARM_LABELS[a] + (f" ({mix_synthetic} synthetic images)" if a == "mix" and mix_synthetic else "") for a in arms
    ]
    lines = [
        f"Top-1 (%) on the real test set, {spread}; each student trained from scratch on the "
        "given images per class (nested, stratified subsets: a larger rung holds every image of a smaller one).",
        "",
        "| images per class | " + " | ".join(md_text(h) for h in heads) + " |",
        "|---" * (len(arms) + 1) + "|",
    ]
    for n in sorted({n for curve in points.values() for n in curve}):
        cells = [str(points[a][n]) if n in points[a] else "–" for a in arms]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def fits_table(fits: Mapping[str, ArmFit]) -> list[str]:
    if not fits:
        return ["No curve has runs at two or more counts, so nothing is fitted."]
    n_boot = max(f.n_boot for f in fits.values())
    lines = [
        f"Fits f(n) = a·log10(n) + b of top-1 on images per class n, by least squares over every seed's run (a: pp "
        f"per tenfold more images; b: the fitted top-1 at one image per class). {BOOTSTRAP_LEVEL:.0f}% CI: "
        f"percentile bootstrap over seeds ({n_boot} resamples; none with a single seed).",
        "",
        "| curve | a (95% CI) | b (95% CI) | gain per doubling (pp) | R² | runs |",
        "|---|---|---|---|---|---|",
    ]
    for arm, f in fits.items():
        a, b = f.coefficient_cells()
        doubling = f"{f.fit.a * LOG10_2:.2f}"
        lines.append(f"| {md_text(ARM_LABELS[arm])} | {a} | {b} | {doubling} | {f.fit.r2:.3f} | {f.fit.n_points} |")
    return lines


def exchange_table(exchanges: list[Exchange]) -> list[str]:
    if not exchanges:
        return []
    lines = [
        "The exchange rate at each real rung m: s*, the synthetic images per class at which the synthetic fit reaches "
        "the real rung's measured top-1, and s*/m, synthetic images per real image. Read only inside the measured "
        "synthetic ladder (never extrapolated).",
        "",
        "| real per class m | real top-1 (%) | synthetic per class s* | synthetic per real image s*/m |",
        "|---|---|---|---|",
    ]
    for e in exchanges:
        count, rate = exchange_cells(e)
        lines.append(f"| {e.real_per_class} | {e.real_top1:.2f} | {count} | {rate} |")
    return lines


def _exchange_sentence(exchanges: list[Exchange]) -> str:
    reached = [e for e in exchanges if e.status == "reached"]
    below = [e for e in exchanges if e.status == "below_ladder"]
    missed = [e for e in exchanges if not e.reached]
    parts = []
    if reached:
        listed = "; ".join(
            f"m = {e.real_per_class} ({e.real_top1:.2f} %) is matched at s* ≈ "
            f"{_count(e.synthetic_per_class)}, {_rate(e.rate)} synthetic per real image"
            for e in reached
        )
        parts.append(f"Inside the synthetic ladder, {listed}.")
        if len(reached) > 1:
            first, last = reached[0], reached[-1]
            trend = "grows" if last.rate > first.rate else "shrinks" if last.rate < first.rate else "holds"
            parts.append(
                f"From m = {first.real_per_class} to m = {last.real_per_class} the rate {trend} "
                f"({_rate(first.rate)} → {_rate(last.rate)})."
            )
    if below:
        listed = ", ".join(str(e.real_per_class) for e in below)
        parts.append(
            f"At m = {listed} even the smallest synthetic rung ({below[0].smallest_synthetic} per class) does at "
            "least as well, by the fit, so only an upper bound on the rate follows."
        )
    if missed:
        listed = "; ".join(f"m = {e.real_per_class} ({gap_text(e)})" for e in missed)
        why = (
            "the synthetic fit does not rise with more images"
            if missed[0].status == "flat"  # the fit is one for every rung: flat for one is flat for all
            else "its fit passes those top-1s only beyond the ladder, which is not extrapolated"
        )
        parts.append(
            f"The synthetic ladder (up to {missed[0].largest_synthetic} per class) does not reach {listed}: {why}."
        )
    return " ".join(parts)


def _flattening_sentence(curve: Mapping[int, Summary], fit: ArmFit | None) -> str:
    gains = doubling_gains({n: s.mean for n, s in curve.items()})
    if not gains:
        return ""
    last = gains[-1]
    fitted = f"the synthetic fit gains {fit.fit.a * LOG10_2:.2f} pp per doubling; " if fit else ""
    start = flattens_from(gains)
    measured = f"measured, its last step ({last.low} → {last.high} per class) gained {last.gain_pp:.2f} pp per doubling"
    if start is None:
        where = f", so it has not flattened below {FLAT_PP_PER_DOUBLING:g} pp per doubling within the ladder."
    else:
        where = f"; from {start} per class on, every step gains under {FLAT_PP_PER_DOUBLING:g} pp per doubling."
    return f"Where it flattens: {fitted}{measured}{where}"


def _mix_sentence(points: Mapping[str, Mapping[int, Summary]], mix_synthetic: int | None) -> str:
    mix = points.get("mix")
    if not mix:
        return ""
    low, high = min(mix), max(mix)
    real = points.get("real", {})
    out = (
        f"Adding m real images per class to all {mix_synthetic or 'the'} synthetic training images gives "
        f"{mix[low].mean:.2f} % at m = {low} and {mix[high].mean:.2f} % at m = {high}"
    )
    if low in real and high in real:
        out += f" (real alone: {real[low].mean:.2f} % and {real[high].mean:.2f} %)"
    synthetic = points.get("synthetic", {})
    if synthetic:
        top = max(synthetic)
        out += f"; the largest synthetic rung alone ({top} per class) is at {synthetic[top].mean:.2f} %"
    return out + "."


def exchange_reading(
    points: Mapping[str, Mapping[int, Summary]],
    fits: Mapping[str, ArmFit],
    exchanges: list[Exchange],
    mix_synthetic: int | None = None,
) -> str:
    """One paragraph, every number computed from the curves, the fits and the exchange rates."""
    if "real" not in points or "synthetic" not in points:
        have = ", ".join(points) or "none"
        return f"An exchange rate needs a real and a synthetic curve; these results have: {have}."
    seeds = max(s.n for curve in points.values() for s in curve.values())
    out = [
        f"Exchange rate: students trained from scratch on {len(points['real'])} real and "
        f"{len(points['synthetic'])} synthetic rungs of images per class; "
        + (f"values are means over up to {seeds} seeds." if seeds > 1 else "every value is a single seed.")
    ]
    slopes = [f"{fits[a].fit.a * LOG10_2:.2f} pp with {a} images" for a in ("real", "synthetic") if a in fits]
    if slopes:
        out.append(f"By the fits, a doubling of images per class gains {' and '.join(slopes)}.")
    unreliable = [a for a in ("real", "synthetic") if a in fits and fits[a].fit.r2 < RELIABLE_R2]
    if unreliable:
        out.append(f"The {' and '.join(unreliable)} fit(s) describe their points poorly (R² < {RELIABLE_R2:g}).")
    out.append(_exchange_sentence(exchanges))
    out.append(_flattening_sentence(points["synthetic"], fits.get("synthetic")))
    out.append(_mix_sentence(points, mix_synthetic))
    return " ".join(part for part in out if part)


# --- figure ---------------------------------------------------------------------------------------------------------


def plot_exchange(
    points: Mapping[str, Mapping[int, Summary]],
    fits: Mapping[str, ArmFit],
    exchanges: list[Exchange],
    path: Path,
    *,
    title: str = "Exchange rate: real vs synthetic images",
) -> Path:
    """Top-1 against images per class (log axis): each curve's means ± std with its fit over its measured range, and
    a dotted line from each matched real rung across to where the synthetic fit reaches it."""
    fig = Figure(figsize=(8.5, 5.6), layout="constrained")
    ax = fig.add_subplot()
    for arm, curve in points.items():
        color, marker = ARM_STYLES[arm]
        xs = sorted(curve)
        spread = any(curve[n].n > 1 for n in xs)
        ax.errorbar(
            xs,
            [curve[n].mean for n in xs],
            yerr=[curve[n].std for n in xs] if spread else None,
            color=color,
            marker=marker,
            linestyle="none",
            capsize=4,
            zorder=3,
            label=figure_text(ARM_LABELS[arm]),
        )
        if arm in fits and len(xs) > 1:
            dense = np.geomspace(min(xs), max(xs), 200)
            fit = fits[arm].fit
            ax.plot(
                dense,
                fit(dense),
                color=color,
                linewidth=1.6,
                alpha=0.85,
                label=f"{figure_text(ARM_LABELS[arm])} fit: {fit.equation()}, R² = {fit.r2:.3f}",
            )
    for e in exchanges:
        if e.status == "reached":
            ax.plot(
                [e.real_per_class, e.synthetic_per_class], [e.real_top1] * 2, color="grey", linestyle=":", linewidth=1.2
            )
            ax.annotate(
                f"×{_rate(e.rate)}",
                (e.synthetic_per_class, e.real_top1),
                textcoords="offset points",
                xytext=(4, 3),
                fontsize=8,
                color="grey",
            )
    counts = sorted({n for curve in points.values() for n in curve})
    ax.set_xscale("log")
    ax.set_xticks(counts, [str(n) for n in counts])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(min(counts) / 1.3, max(counts) * 1.3)
    ax.set_xlabel("training images per class (log scale)")
    ax.set_ylabel("top-1 (%) on the real test set")
    spread = spread_note(s for curve in points.values() for s in curve.values())
    ax.set_title(f"{title}\n({spread}; dotted: real rung → matching synthetic count)")
    ax.grid(True, alpha=0.35)
    ax.legend(loc="best", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


# --- the section ----------------------------------------------------------------------------------------------------


def _mix_synthetic(records: list[ExchangeRateRecord]) -> int | None:
    counts = {r.synthetic_images for r in records if r.side == "mix"}
    return counts.pop() if len(counts) == 1 else None


def schedule_lines(records: list[ExchangeRateRecord], scope: Scope, schedule: str, several: bool) -> list[str]:
    """One schedule's table, fits, exchange rates, figure and reading."""
    points = curve_points(records)
    fits = curve_fits(records)
    exchanges = exchange_rates(points, fits)
    mix_synthetic = _mix_synthetic(records)
    name = "exchange_rate" if schedule == DEFAULT_SCHEDULE else f"exchange_rate_{schedule}"
    plot_exchange(points, fits, exchanges, scope.figure_path(name), title=f"Exchange rate ({schedule})")
    heading = [f"### Schedule {md_text(schedule)}", ""] if several else []
    return [
        *heading,
        f"Schedule {md_text(schedule)}: {SCHEDULES.get(schedule, 'as recorded')}.",
        "",
        f"![Exchange rate: top-1 vs images per class ({md_text(schedule)})]({scope.figure(name)})",
        "",
        *points_table(points, mix_synthetic),
        "",
        *fits_table(fits),
        "",
        *([*exchange_table(exchanges), ""] if exchanges else []),
        exchange_reading(points, fits, exchanges, mix_synthetic),
        "",
    ]


@section("exchange_rate", kinds=("exchange_rate",), order=45)
def exchange_rate_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The exchange-rate section (one part per schedule); draws the exchange_rate figures. Empty without runs."""
    groups = by_schedule(records)
    if not groups:
        return []
    lines = [scope.heading("Exchange rate: synthetic images per real image"), ""]
    for schedule, group in groups.items():
        lines += schedule_lines(group, scope, schedule, several=len(groups) > 1)
    return lines
