"""Data reduction (the paper's Figures 3 and 4) from result records: per-arm curves, fits, tables and a reading.

Pure functions over `ResultRecord`s; nothing here reads files or draws.

Vocabulary: a data-reduction record trained its student on a fraction 1/x of the real training data (`x`, or
1 / `real_fraction` when the record has no `x`). Its `arm` says how the student started: "transfer" (layers 1..k
from the synthetic-trained model, frozen, the rest re-initialised), "transfer_finetune" (the same with the rest
initialised from the synthetic model and fine-tuned), "scratch" (the whole student from scratch) or "full_finetune"
(every layer from the synthetic model, all trained). R is the from-scratch baseline on the real side (the full-real
model). Curves are fitted with f(x) = a·log10(x) + b (see `fits`).

The paper's numbers (its Figure 3 fit, the cost at 1/8) are for a ResNet-18 with k = 16 of its 18 layers transferred.
The reading compares with them only when the transfer arm's records are that setting; for any other model or k it
shows them for reference. Records of one call should come from one model family (the report splits them).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from synthgap.experiments.kinds.data_reduction import ReductionRecord
from synthgap.experiments.results import ResultRecord
from synthgap.report.figures import plot_reduction_arms, plot_reduction_fit
from synthgap.report.fits import BOOTSTRAP_LEVEL, RELIABLE_R2, LogFit, bootstrap_fit, fit_log10, fraction_needed
from synthgap.report.layers import layer_baselines
from synthgap.report.sections import Scope, section
from synthgap.report.tables import Summary, layer_count, model_name, num_layers, summarize
from synthgap.report.text import fraction_label, md_text

ARMS = ("transfer", "transfer_finetune", "scratch", "full_finetune")  # table / figure order
ARM_DESCRIPTIONS = {
    "transfer": "layers 1..k from the synthetic-trained model, frozen, the rest re-initialised",
    "transfer_finetune": "layers 1..k from the synthetic-trained model, frozen, the rest initialised from it and "
    "fine-tuned",
    "scratch": "the whole student trained from scratch",
    "full_finetune": "every layer initialised from the synthetic-trained model, all trained",
}
PAPER_A, PAPER_B = -2.23, 85.61  # the paper's fit of its transfer arm (ImageNet-100, k = 16), Figure 3
PAPER_R = 87.8  # the paper's real-only student (top-1, %)
PAPER_COST_AT_8 = 4.2  # pp the paper reports for 1/8 of the real data (= PAPER_R − f(8), see the reading)
PAPER_MODEL, PAPER_K = "resnet18", 16  # the paper's student and the layers it transfers (all but the last two)
READING_X = 8  # the reading reports the cost of keeping 1/READING_X of the real data
DEFAULT_D = 5.0  # pp: "within d of the full-real model"
_DEFAULT_SCHEDULE = "same_steps"


@dataclass(frozen=True)
class ArmSetting:
    """What a curve's students are: the model family, its layer count L and the layers k taken from the synthetic
    model."""

    model: str
    num_layers: int
    k: int

    def is_paper(self) -> bool:
        """Whether this is the paper's setting, the only one its fit and costs can be compared with."""
        return self.model == PAPER_MODEL and self.k == PAPER_K


@dataclass(frozen=True)
class ArmFit:
    fit: LogFit  # over every seed's point
    ci_a: tuple[float, float]  # BOOTSTRAP_LEVEL % percentile interval, resampling seeds; degenerate for one seed
    ci_b: tuple[float, float]
    n_seeds: int
    n_boot: int

    def coefficient_cells(self) -> tuple[str, str]:
        """Table cells for a and b: each with its interval, or marked as one seed's (no interval to give)."""
        if self.n_seeds > 1:
            return (
                f"{self.fit.a:.2f} [{self.ci_a[0]:.2f}, {self.ci_a[1]:.2f}]",
                f"{self.fit.b:.2f} [{self.ci_b[0]:.2f}, {self.ci_b[1]:.2f}]",
            )
        return f"{self.fit.a:.2f} (1 seed)", f"{self.fit.b:.2f} (1 seed)"


def record_x(record: ReductionRecord) -> float:
    """The divisor x of the real data a record's student saw (the record's `x`, else 1 / real_fraction)."""
    return float(record.x) if record.x is not None else round(1.0 / record.real_fraction, 2)


def _variant(record: ReductionRecord) -> tuple[int, str, str]:
    return record.n_transferred, record.schedule, str(record.augmentation)


def _variant_order(variant: tuple[int, str, str], paper_k: int) -> tuple:
    k, schedule, augmentation = variant  # the paper's setting (all but the last two layers, same steps) first
    return (k != paper_k, k, schedule != _DEFAULT_SCHEDULE, schedule, augmentation)


def _groups(records: Iterable[ResultRecord]) -> dict[str, list[ReductionRecord]]:
    """Data-reduction records per curve key, in table order.

    The key is the arm, with the options that vary between that arm's records in parentheses when there are several
    (e.g. "transfer (k=12)" and "transfer (k=16)"; options: k, schedule, augmentation). Records of one key are pooled
    whatever their source / target. Within an arm, k = L − 2 (the paper's 16 of 18: all but the last two layers)
    comes first.
    """
    reductions = [r for r in records if isinstance(r, ReductionRecord)]
    paper_k = num_layers(reductions) - 2
    by_arm: dict[str, dict[tuple, list[ReductionRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in reductions:
        by_arm[r.arm][_variant(r)].append(r)
    out: dict[str, list[ReductionRecord]] = {}
    for arm in sorted(by_arm, key=lambda a: (ARMS.index(a) if a in ARMS else len(ARMS), a)):
        variants = by_arm[arm]
        varying = [len({v[i] for v in variants}) > 1 for i in range(3)]
        for variant in sorted(variants, key=lambda v: _variant_order(v, paper_k)):
            k, schedule, augmentation = variant
            parts = [f"k={k}", schedule, f"augmentation {augmentation}"]
            label = ", ".join(p for p, v in zip(parts, varying, strict=True) if v)
            out[f"{arm} ({label})" if label else arm] = variants[variant]
    return out


def reduction_settings(records: Iterable[ResultRecord]) -> dict[str, ArmSetting]:
    """{curve key: ArmSetting} of every curve of `reduction_points` (model, layer count and k of its records)."""
    settings = {}
    for key, group in _groups(records).items():
        first = group[0]
        settings[key] = ArmSetting(model_name(first), layer_count(first), first.n_transferred)
    return settings


def reduction_points(records: Iterable[ResultRecord]) -> dict[str, dict[float, Summary]]:
    """Top-1 over seeds per x for each arm: {arm key: {x: Summary}}, arms in `ARMS` order, x ascending."""
    points: dict[str, dict[float, Summary]] = {}
    for key, group in _groups(records).items():
        by_x: dict[float, list[float]] = defaultdict(list)
        for r in group:
            by_x[record_x(r)].append(r.top1)
        points[key] = {x: summarize(by_x[x]) for x in sorted(by_x)}
    return points


def _seed_points(group: list[ReductionRecord]) -> dict[int, list[tuple[float, float]]]:
    by_seed: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in group:
        by_seed[r.seed].append((record_x(r), r.top1))
    return by_seed


def arm_fits(records: Iterable[ResultRecord]) -> dict[str, LogFit]:
    """`fit_log10` per arm key over every seed's (x, top-1), without confidence intervals; arms with runs at fewer
    than two distinct x are left out."""
    fits: dict[str, LogFit] = {}
    for key, group in _groups(records).items():
        points = [p for pts in _seed_points(group).values() for p in pts]
        if len({x for x, _ in points}) >= 2:
            fits[key] = fit_log10([x for x, _ in points], [y for _, y in points])
    return fits


def reduction_fits(records: Iterable[ResultRecord], n_boot: int = 2000, seed: int = 0) -> dict[str, ArmFit]:
    """`arm_fits` with bootstrap CIs over seeds. Arms with runs at fewer than two distinct x are left out."""
    records = list(records)
    groups = _groups(records)
    fits: dict[str, ArmFit] = {}
    for key, fit in arm_fits(records).items():
        by_seed = _seed_points(groups[key])
        ci_a, ci_b = bootstrap_fit(by_seed, n_boot=n_boot, seed=seed)
        fits[key] = ArmFit(fit, ci_a, ci_b, n_seeds=len(by_seed), n_boot=n_boot)
    return fits


def _base_arm(key: str) -> str:
    return key.split(" (", 1)[0]


def _reference_only(
    points: dict[str, dict[float, Summary]], settings: Mapping[str, ArmSetting] | None
) -> ArmSetting | None:
    """The setting of the transfer arm when it is not the paper's, so that the paper's numbers are shown for reference
    only; None when they can be compared (the paper's setting, no transfer arm, or curves built by hand: no
    `settings`)."""
    transfer = _main_key(points, "transfer")
    setting = settings.get(transfer) if settings is not None and transfer is not None else None
    return setting if setting is not None and not setting.is_paper() else None


def reduction_table_lines(
    points: dict[str, dict[float, Summary]],
    fits: dict[str, ArmFit],
    *,
    settings: Mapping[str, ArmSetting] | None = None,
) -> list[str]:
    """Markdown: top-1 per x (rows) and arm (columns), then the fits table with the paper's fit as the last row.

    `settings` (`reduction_settings(records)`) say whether the paper's row is a comparison or a reference: it is
    labelled as ResNet-18, k = 16, for reference, when the transfer arm here is another model or k."""
    if not points:
        return []
    keys = list(points)
    usual = Counter(s.n for curve in points.values() for s in curve.values()).most_common(1)[0][0]

    def cell(summary: Summary | None) -> str:
        if summary is None:
            return "–"
        return str(summary) if summary.n == usual else f"{summary} (n={summary.n})"

    spread = f"mean ± sample std over {usual} seeds" if usual > 1 else "single seed"
    arms = [a for a in ARMS if any(_base_arm(k) == a for k in keys)]
    described = "; ".join(f"{a} = {ARM_DESCRIPTIONS[a]}" for a in arms)
    lines = [
        f"Top-1 (%) on the real test set ({spread}; n = seeds where a cell differs). Each student was trained on a "
        f"fraction 1/x of the real training data." + (f" Arms: {described}." if described else ""),
        "",
        "| x | fraction of real data | " + " | ".join(md_text(k) for k in keys) + " |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for x in sorted({x for curve in points.values() for x in curve}):
        lines.append(f"| {x:g} | {fraction_label(x)} | " + " | ".join(cell(points[k].get(x)) for k in keys) + " |")
    n_boot = max((f.n_boot for f in fits.values()), default=0)
    lines += [
        "",
        f"Fits f(x) = a·log10(x) + b by least squares over every seed's run (a: pp of top-1 per tenfold reduction of "
        f"the real data; b: fitted top-1 with all of it). {BOOTSTRAP_LEVEL:.0f}% CI: percentile bootstrap over "
        f"seeds ({n_boot} resamples; none with a single seed).",
        "",
        "| arm | a (95% CI) | b (95% CI) | R² | runs |",
        "|---|---|---|---|---|",
    ]
    for key, f in fits.items():
        a, b = f.coefficient_cells()
        lines.append(f"| {md_text(key)} | {a} | {b} | {f.fit.r2:.3f} | {f.fit.n_points} |")
    paper = "paper (ImageNet-100, transfer)"
    if _reference_only(points, settings):
        paper = f"paper (ImageNet-100, transfer, {PAPER_MODEL}, k={PAPER_K}; for reference)"
    lines.append(f"| {paper} | {PAPER_A:.2f} | {PAPER_B:.2f} | – | – |")
    return lines


def _main_key(keys: Iterable[str], arm: str) -> str | None:
    """The curve of an arm the reading is about: the arm itself, or its first variant."""
    return next((k for k in keys if k == arm or k.startswith(f"{arm} (")), None)


def _x_label(x: float) -> str:
    return f"{x:.1f}" if x < 1000 else f"{x:.3g}"


def _costs(points: dict[str, dict[float, Summary]], keys: list[str]) -> str:
    have = [k for k in keys if 1 in points[k] and READING_X in points[k]]
    definition = (
        f"the cost of 1/{READING_X} of the real data defined as an arm's top-1 with all real data (x = 1) minus "
        f"its top-1 at x = {READING_X}"
    )
    if not have:
        return f"No arm has runs at both x = 1 and x = {READING_X}, so {definition} is unknown here."
    costs = " vs ".join(f"{points[k][1].mean - points[k][READING_X].mean:.2f} pp ({md_text(k)})" for k in have)
    missing = [md_text(k) for k in keys if k not in have]
    gap = f" (unknown for {', '.join(missing)}: no run at x = 1 or x = {READING_X})" if missing else ""
    return f"With {definition}, 1/{READING_X} of the real data costs {costs}{gap}."


def _unreliable(fit: LogFit) -> str:
    return f"the fit is unreliable, R² = {fit.r2:.2f} < {RELIABLE_R2:g}" if fit.r2 < RELIABLE_R2 else ""


def _per_decade(fits: dict[str, ArmFit], keys: list[str]) -> str:
    parts = []
    for k in keys:
        if k not in fits:
            parts.append(f"no fit for {md_text(k)} (runs at fewer than two distinct x)")
            continue
        f = fits[k]
        ci = f"; {BOOTSTRAP_LEVEL:.0f}% CI {-f.ci_a[1]:.2f} to {-f.ci_a[0]:.2f}" if f.n_seeds > 1 else ""
        unreliable = _unreliable(f.fit)
        parts.append(f"{-f.fit.a:.2f} pp ({md_text(k)}{ci}{f'; {unreliable}' if unreliable else ''})")
    return f"Fitted loss per tenfold reduction of the real data (−a of f(x) = a·log10(x) + b): {', '.join(parts)}."


def _needed_part(fit: LogFit, x: float | None, key: str, own: str, measured: float) -> str:
    """One arm's answer to "how small a fraction keeps the fit within d pp"; an unreliable fit (R² below
    `RELIABLE_R2`, e.g. a flat noisy curve whose fit claims 1/1.65e+11 of the data) is never read beyond the
    measured range."""
    unreliable = _unreliable(fit)
    if x is None:
        return f"any fraction ({key}{own}: the fit does not decrease, a >= 0{f'; {unreliable}' if unreliable else ''})"
    if unreliable and x > measured:
        return (
            f"unknown ({key}{own}: {unreliable}, and it would put the fraction beyond the largest measured "
            f"x = {measured:g}; not extrapolated)"
        )
    note = f"; extrapolated beyond the largest measured x = {measured:g}" if x > measured else ""
    return f"1/{_x_label(x)} ({key}{own}{note}{f'; {unreliable}' if unreliable else ''})"


def _needed(points, fits, keys, r: Summary | None, d: float) -> str:
    parts = []
    for k in keys:
        if k not in fits:
            continue
        fit = fits[k].fit
        if r is not None:
            reference, own = r.mean, ""
        elif 1 in points[k]:
            reference, own = points[k][1].mean, f", own x = 1 mean {points[k][1].mean:.2f}%"
        else:
            reference, own = fit.b, f", own fitted value at x = 1 {fit.b:.2f}% (no run at x = 1)"
        x = fraction_needed(fit, reference, d)
        if fit.b < reference - d:
            parts.append(f"not even all of it ({md_text(k)}{own}: the fit is {fit.b:.2f}% at x = 1)")
        else:
            parts.append(_needed_part(fit, x, md_text(k), own, max(points[k])))
    if not parts:
        return ""
    if r is not None:
        target = f"within {d:g} pp of the full-real model R ({r.mean:.2f}%, i.e. at least {r.mean - d:.2f}%)"
    else:
        target = f"within {d:g} pp of the arm's own top-1 at x = 1 (R, the full-real model, is not in these results)"
    return f"Smallest fraction of the real data that keeps the fitted top-1 {target}: {'; '.join(parts)}."


def _paper(points, fits, transfer: str | None, r: Summary | None, reference_only: ArmSetting | None) -> str:
    paper_f8 = PAPER_A * math.log10(READING_X) + PAPER_B
    out = (
        f"The paper (ImageNet-100, transfer arm, k = {PAPER_K}) fits a = {PAPER_A:.2f}, b = {PAPER_B:.2f}, i.e. "
        f"{-PAPER_A:.2f} pp per tenfold reduction, and reports {PAPER_COST_AT_8:.1f} pp lost at 1/{READING_X}; that "
        f"number is its full-real model ({PAPER_R:.1f}%) minus f({READING_X}) = {paper_f8:.2f}%, not the transfer "
        f"arm's own cost (by its fit {-PAPER_A * math.log10(READING_X):.2f} pp)."
    )
    if transfer is None or transfer not in fits:
        return out + " There is no fitted transfer arm here to compare with."
    if reference_only is not None:
        return (
            out + f" That fit is for a {PAPER_MODEL} with k = {PAPER_K}; the transfer arm here is a "
            f"{md_text(reference_only.model)} with k = {reference_only.k} of its {reference_only.num_layers} "
            "layers, so the paper's numbers are shown for reference only."
        )
    a = fits[transfer].fit.a
    ratio = f" ({a / PAPER_A:.2f}× the paper's)" if a < 0 else ""
    unreliable = _unreliable(fits[transfer].fit)
    shown = md_text(transfer)
    here = [f"here {shown} loses {-a:.2f} pp per tenfold reduction{ratio}{f' ({unreliable})' if unreliable else ''}"]
    curve = points.get(transfer, {})
    if READING_X in curve:
        if r is not None:
            here.append(
                f"R − {shown} at 1/{READING_X} is {r.mean - curve[READING_X].mean:.2f} pp "
                f"(paper {PAPER_COST_AT_8:.1f} pp)"
            )
        if 1 in curve:
            here.append(
                f"its own cost at 1/{READING_X} is {curve[1].mean - curve[READING_X].mean:.2f} pp "
                f"(paper's fit {-PAPER_A * math.log10(READING_X):.2f} pp)"
            )
    return out + " By comparison, " + ", ".join(here) + "."


def reduction_reading(
    points: dict[str, dict[float, Summary]],
    fits: dict[str, ArmFit],
    baselines: dict[str, Summary],
    d: float = DEFAULT_D,
    *,
    settings: Mapping[str, ArmSetting] | None = None,
) -> str:
    """One paragraph of plain language, every number computed from the curves, the fits and R (`baselines["R"]`).

    Covers: the cost of 1/8 of the real data per arm (top-1 at x = 1 minus top-1 at x = 8, same arm), the fitted
    loss per tenfold reduction (−a), the smallest fraction keeping the fit within `d` pp of R (of the arm's own
    x = 1 mean when R is missing), and the comparison with the paper's a = −2.23 and 4.2 pp at 1/8 — made only when
    the transfer arm is the paper's ResNet-18 with k = 16 (`settings`, from `reduction_settings(records)`; curves
    built by hand without them are taken as that setting), else the paper's numbers are given for reference.
    """
    if not points:
        return "There are no data-reduction runs in these results."
    keys = [k for k in (_main_key(points, a) for a in ARMS) if k] or list(points)
    r = baselines.get("R")
    seeds = max(s.n for curve in points.values() for s in curve.values())
    out = [
        "Data reduction: each student was trained on a fraction 1/x of the real training data; "
        + (f"values are means over up to {seeds} seeds." if seeds > 1 else "every value is a single seed.")
    ]
    variants = [k for k in keys if "(" in k]
    if variants:
        out.append(f"Curves read: {', '.join(md_text(v) for v in variants)}.")
    out.append(_costs(points, keys))
    out.append(_per_decade(fits, keys))
    needed = _needed(points, fits, keys, r, d)
    if needed:
        out.append(needed)
    out.append(_paper(points, fits, _main_key(points, "transfer"), r, _reference_only(points, settings)))
    return " ".join(out)


@section("data_reduction", kinds=("data_reduction",), order=40)
def data_reduction_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The data-reduction section; draws the reduction_{fit,arms} figures as a side effect. Empty without runs."""
    points = reduction_points(records)
    if not points:
        return []
    fits = reduction_fits(records)
    settings = reduction_settings(records)
    baselines = layer_baselines(records)
    main = next((k for k in points if k == "transfer" or k.startswith("transfer (")), next(iter(points)))
    main_fit = fits[main].fit if main in fits else None
    plot_reduction_fit(points[main], main_fit, scope.figure_path("reduction_fit"), label=main)
    arm_fits = {k: f.fit for k, f in fits.items()}
    plot_reduction_arms(points, arm_fits, scope.figure_path("reduction_arms"), reference=baselines.get("R"))
    return [
        scope.heading("Data reduction"),
        "",
        f"![Data reduction (Figure 3)]({scope.figure('reduction_fit')})",
        "",
        f"![Transfer vs scratch (Figure 4)]({scope.figure('reduction_arms')})",
        "",
        *reduction_table_lines(points, fits, settings=settings),
        "",
        reduction_reading(points, fits, baselines, settings=settings),
        "",
    ]
