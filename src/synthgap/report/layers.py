"""Layer-wise transfer (the paper's Figure 2) from result records: sweep summaries, a table and a reading.

Pure functions over `ResultRecord`s; nothing here reads files or draws.

Vocabulary: a layer-transfer record's `source` trained layers 1..N (`n_transferred`), its `target` trained layers
N+1..18. A *direction* is "<source side>→<target side>", e.g. "synthetic→real", with the sides decided by
`record_side` (the side the runner recorded, else the data's name). R and S are the from-scratch baselines
trained on the real and on the synthetic side.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from synthgap.experiments.results import ResultRecord
from synthgap.report.tables import (
    Summary,
    baseline_top1,
    real_and_synthetic_targets,
    record_side,
    side,
    summarize,
)

S2R = "synthetic→real"
R2S = "real→synthetic"
RECOVERY_NS = (8, 12, 16, 17)  # N at which the reading reports the fraction of the gap recovered
PAPER_RULE_N = 12  # the paper's finding is checked on the student with the first 12 layers from synthetic data
PAPER_RULE_MIN_RECOVERED = 50.0  # ... which must still recover at least this % of the gap R − S

# Variant options of a layer-transfer run and the default each record has when the field is missing.
_DEFAULT_REST = "reinit"
_DEFAULT_FROZEN_BN = "eval"


def _variant(record: ResultRecord) -> tuple[bool, str, str]:
    extra = record.model_extra or {}
    return record.frozen, extra.get("rest") or _DEFAULT_REST, extra.get("frozen_bn") or _DEFAULT_FROZEN_BN


def _variant_order(variant: tuple[bool, str, str]) -> tuple:
    frozen, rest, bn = variant  # the paper's setting (frozen, reinit, BN eval) first
    return (not frozen, rest != _DEFAULT_REST, bn != _DEFAULT_FROZEN_BN, rest, bn)


def _variant_label(variant: tuple[bool, str, str], varying: tuple[bool, bool, bool]) -> str:
    frozen, rest, bn = variant
    parts = ["frozen" if frozen else "trainable", f"rest {rest}", f"BN {bn}"]
    return ", ".join(part for part, varies in zip(parts, varying, strict=True) if varies)


def _direction_order(direction: str) -> tuple:
    return ({S2R: 0, R2S: 1}.get(direction, 2), direction)


def layer_sweep(records: Iterable[ResultRecord]) -> dict[str, dict[int, Summary]]:
    """Top-1 over seeds per N for each curve: {curve key: {N: Summary}}, N ascending.

    Curve keys: the direction ("synthetic→real", "real→synthetic"; other pairs such as "real→real" are kept as
    "<side>→<side>") when every layer-transfer record has the same variant (frozen, rest, frozen_bn). When several
    variants are present, every key gets the options that differ between them in parentheses, e.g.
    "synthetic→real (frozen, BN eval)" and "synthetic→real (frozen, BN reestimate)"; options the records all
    share are left out. Missing `rest` / `frozen_bn` fields count as "reinit" / "eval" (the defaults).
    Keys are ordered synthetic→real, real→synthetic, others; within a direction the paper's setting
    (frozen, rest reinit, BN eval) comes first. Records without a source are skipped.
    """
    transfers = [r for r in records if r.kind == "layer_transfer" and r.source]
    variants = {_variant(r) for r in transfers}
    varying = tuple(len({v[i] for v in variants}) > 1 for i in range(3))
    groups: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in transfers:
        target = record_side(r)
        source = {"real": "synthetic", "synthetic": "real"}.get(target) if "side" in (r.model_extra or {}) else None
        direction = f"{source or side(r.source)}→{target}"
        groups[(direction, _variant(r))][r.n_transferred].append(r.top1)
    sweep: dict[str, dict[int, Summary]] = {}
    for direction, variant in sorted(groups, key=lambda k: (_direction_order(k[0]), _variant_order(k[1]))):
        key = f"{direction} ({_variant_label(variant, varying)})" if any(varying) else direction
        by_n = groups[(direction, variant)]
        sweep[key] = {n: summarize(by_n[n]) for n in sorted(by_n)}
    return sweep


def layer_baselines(records: Iterable[ResultRecord]) -> dict[str, Summary]:
    """{"R": Summary, "S": Summary} of the from-scratch baselines on the real / synthetic side (each if present)."""
    records = list(records)
    groups = baseline_top1(records)
    real, synthetic = real_and_synthetic_targets(records)
    out = {}
    if real:
        out["R"] = summarize(groups[real])
    if synthetic:
        out["S"] = summarize(groups[synthetic])
    return out


def recovered_percent(top1: float, r: float, s: float) -> float:
    """Share of the gap R − S that a student recovers: (top-1 − S) / (R − S), in percent."""
    return 100.0 * (top1 - s) / (r - s)


def layer_table_lines(sweep: dict[str, dict[int, Summary]], baselines: dict[str, Summary]) -> list[str]:
    """Markdown: one row per N, one column per curve, then R and S rows (repeated in each column)."""
    if not sweep:
        return []
    keys = list(sweep)
    counts = Counter(s.n for curve in sweep.values() for s in curve.values())
    counts.update(s.n for s in baselines.values())
    usual = counts.most_common(1)[0][0]

    def cell(summary: Summary | None) -> str:
        if summary is None:
            return "–"
        return str(summary) if summary.n == usual else f"{summary} (n={summary.n})"

    spread = f"mean ± sample std over {usual} seeds" if usual > 1 else "single seed"
    lines = [
        f"Top-1 (%) on the real test set ({spread}; n = seeds where a cell differs). N = layers 1..N taken from "
        "the model trained on the first-named data, layers N+1..18 trained on the second.",
        "",
        "| N | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for n in sorted({n for curve in sweep.values() for n in curve}):
        lines.append(f"| {n} | " + " | ".join(cell(sweep[k].get(n)) for k in keys) + " |")
    for name, label in (("R", "R (real, from scratch)"), ("S", "S (synthetic, from scratch)")):
        if name in baselines:
            lines.append(f"| {label} | " + " | ".join(cell(baselines[name]) for _ in keys) + " |")
    return lines


def _main_curve(sweep: dict[str, dict[int, Summary]], direction: str) -> tuple[str | None, dict[int, float]]:
    """The curve of a direction the reading is about: the direction itself, or its first variant."""
    key = next((k for k in sweep if k == direction or k.startswith(f"{direction} (")), None)
    return key, ({n: s.mean for n, s in sweep[key].items()} if key else {})


def _first_below(curve: dict[int, float], threshold: float) -> str:
    """'from N = k on' / 'first at N = k (not at every larger N)' / '' when the curve never goes below."""
    below = [n for n, v in curve.items() if v < threshold]
    if not below:
        return ""
    first = below[0]
    if all(v < threshold for n, v in curve.items() if n >= first):
        return f"from N = {first} on"
    return f"first at N = {first} (not at every larger N)"


def _range(name: str, curve: dict[int, float]) -> str:
    (lo, v_lo), (hi, v_hi) = min(curve.items()), max(curve.items())
    return f"{name} goes from {v_lo:.2f}% at N = {lo} to {v_hi:.2f}% at N = {hi}."


def gap_reading(sweep: dict[str, dict[int, Summary]], baselines: dict[str, Summary]) -> str:
    """One paragraph of plain language, every number computed from the sweep and the baselines."""
    s2r_key, s2r = _main_curve(sweep, S2R)
    r2s_key, r2s = _main_curve(sweep, R2S)
    r = baselines["R"].mean if "R" in baselines else None
    s = baselines["S"].mean if "S" in baselines else None
    gap = r - s if r is not None and s is not None else None
    out: list[str] = []

    if gap is not None:
        out.append(
            f"R (trained on real data) reaches {r:.2f}% top-1 on the real test set and S (trained on synthetic "
            f"data) {s:.2f}%, a gap R − S of {gap:.2f} pp."
        )
    elif r is not None or s is not None:
        name, value = ("R", r) if r is not None else ("S", s)
        out.append(f"Only the {name} baseline ({value:.2f}%) is in these results, so the gap R − S is unknown.")
    else:
        out.append("There are no R/S baselines in these results, so the gap R − S is unknown.")
    seeds = max(x.n for x in [*baselines.values(), *(v for c in sweep.values() for v in c.values())])
    out.append(f"Values are means over up to {seeds} seeds." if seeds > 1 else "Every value is a single seed.")
    variants = [k for k in (s2r_key, r2s_key) if k and "(" in k]
    if variants:
        out.append(f"Curves read: {' and '.join(variants)}.")

    if s2r:
        if gap is not None and gap > 0:
            at = [n for n in RECOVERY_NS if n in s2r]
            if at:
                shares = ", ".join(f"{recovered_percent(s2r[n], r, s):.0f}% at N = {n}" for n in at)
                out.append(
                    "Share of the gap recovered with layers 1..N from the synthetic-trained model and the rest "
                    f"trained on real data (synthetic→real; recovered = (top-1(N) − S) / (R − S)): {shares}."
                )
            if 0 in s2r and 0 in r2s and s2r[0] > r2s[0]:  # same-recipe references: N = 0 trains from scratch
                r0, s0 = s2r[0], r2s[0]
                at = [n for n in RECOVERY_NS if n in s2r]
                shares = ", ".join(f"{recovered_percent(s2r[n], r0, s0):.0f}% at N = {n}" for n in at)
                out.append(
                    "Measured against students trained from scratch with the stage-2 recipe (the N = 0 points: "
                    f"real {r0:.2f}%, synthetic {s0:.2f}%, a gap of {r0 - s0:.2f} pp), the shares are {shares}."
                )
            where = _first_below(s2r, r - gap / 2)
            out.append(
                f"Synthetic→real falls more than half the gap below R (under {r - gap / 2:.2f}%) {where}."
                if where
                else f"Synthetic→real never falls more than half the gap below R (under {r - gap / 2:.2f}%)."
            )
        elif gap is not None:
            out.append(f"S is not below R, so there is no gap to locate. {_range('Synthetic→real', s2r)}")
        else:
            out.append(_range("Synthetic→real", s2r))

    if r2s:
        if s is not None:
            where = _first_below(r2s, s)
            best = max(r2s, key=r2s.get)
            out.append(
                (f"Real→synthetic drops below S {where}" if where else "Real→synthetic never drops below S")
                + f"; its best point is {r2s[best]:.2f}% at N = {best} ({r2s[best] - s:+.2f} pp over S)."
            )
        else:
            out.append(_range("Real→synthetic", r2s))

    finding = "the paper's finding that the drop mainly stems from the final layers"
    if gap is not None and gap > 0 and PAPER_RULE_N in s2r:
        kept = recovered_percent(s2r[PAPER_RULE_N], r, s)
        verdict = "match" if kept >= PAPER_RULE_MIN_RECOVERED else "do not match"
        out.append(
            f"Rule for {finding}: the student whose first {PAPER_RULE_N} layers come from synthetic data must "
            f"still recover at least {PAPER_RULE_MIN_RECOVERED:.0f}% of the gap; it recovers {kept:.0f}%, so these "
            f"results {verdict} that finding."
        )
    else:
        out.append(
            f"Whether this matches {finding} cannot be decided here: that needs R, S with R > S, and "
            f"synthetic→real at N = {PAPER_RULE_N}."
        )
    return " ".join(out)
