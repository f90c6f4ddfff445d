"""Layer-wise transfer (the paper's Figure 2) from result records: sweep summaries, a table and a reading.

Pure functions over `ResultRecord`s of ONE model family; nothing here reads files or draws.

Vocabulary: a layer-transfer record's `source` trained layers 1..N (`n_transferred`), its `target` trained layers
N+1..L, where L is the family's layer count (the records' `num_layers`). A *direction* is
"<source_side>→<side>", e.g. "synthetic→real", read from the record's `source_side` and `side` only; records
without both (written by old versions) are not part of any curve. R and S are the from-scratch baselines whose side
is "real" / "synthetic" (see `tables.side_baselines`).

The reading's fixed points scale with L: it reports the share of the gap recovered at N = round(4L/9), round(2L/3),
L − 2 and L − 1, and checks the paper's rule at N = round(2L/3). For ResNet-18 (L = 18) these are the paper's
N = 8, 12, 16, 17 and 12.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from synthgap.experiments.kinds.layer_transfer import TransferRecord
from synthgap.experiments.results import ResultRecord
from synthgap.report.figures import plot_layer_sweep
from synthgap.report.sections import Scope, section
from synthgap.report.tables import LEGACY_NUM_LAYERS, Summary, by_model, num_layers, side_baselines, summarize
from synthgap.report.text import md_text

S2R = "synthetic→real"
R2S = "real→synthetic"
PAPER_RULE_MIN_RECOVERED = 50.0  # the student at `paper_rule_n` must still recover at least this % of the gap R − S

# The paper's setting of a layer-transfer run; records of it come first in every direction.
_PAPER_REST = "reinit"
_PAPER_FROZEN_BN = "eval"


def recovery_ns(num_layers: int) -> tuple[int, ...]:
    """N at which the reading reports the share of the gap recovered: round(4L/9), round(2L/3), L − 2, L − 1
    (8, 12, 16, 17 for ResNet-18's 18 layers), without repeats for very shallow models."""
    points = (round(4 * num_layers / 9), round(2 * num_layers / 3), num_layers - 2, num_layers - 1)
    return tuple(sorted({n for n in points if n >= 1}))


def paper_rule_n(num_layers: int) -> int:
    """The N of the paper's check: the first 2/3 of the layers from synthetic data (12 of ResNet-18's 18)."""
    return round(2 * num_layers / 3)


def _variant(record: TransferRecord) -> tuple[bool, str, str]:
    return record.frozen, record.rest, record.frozen_bn


def _variant_order(variant: tuple[bool, str, str]) -> tuple:
    frozen, rest, bn = variant  # the paper's setting (frozen, reinit, BN eval) first
    return (not frozen, rest != _PAPER_REST, bn != _PAPER_FROZEN_BN, rest, bn)


def _variant_label(variant: tuple[bool, str, str], varying: tuple[bool, bool, bool]) -> str:
    frozen, rest, bn = variant
    parts = ["frozen" if frozen else "trainable", f"rest {rest}", f"BN {bn}"]
    return ", ".join(part for part, varies in zip(parts, varying, strict=True) if varies)


def _direction_order(direction: str) -> tuple:
    return ({S2R: 0, R2S: 1}.get(direction, 2), direction)


def transfer_records(records: Iterable[ResultRecord]) -> list[TransferRecord]:
    """The layer-transfer records that belong to a curve: those that say which side trained each part."""
    return [r for r in records if isinstance(r, TransferRecord) and r.source_side and r.side]


def main_variant_records(records: Iterable[ResultRecord], direction: str) -> list[TransferRecord]:
    """The records of a direction's main curve, the one the reading is about: its first variant in sweep order (the
    paper's setting when present)."""
    transfers = [r for r in transfer_records(records) if f"{r.source_side}→{r.side}" == direction]
    if not transfers:
        return []
    main = min((_variant(r) for r in transfers), key=_variant_order)
    return [r for r in transfers if _variant(r) == main]


def layer_sweep(records: Iterable[ResultRecord]) -> dict[str, dict[int, Summary]]:
    """Top-1 over seeds per N for each curve: {curve key: {N: Summary}}, N ascending.

    Curve keys: the direction "<source_side>→<side>" ("synthetic→real", "real→synthetic"; other pairs such as
    "real→real" are kept as they are) when every layer-transfer record has the same variant (frozen, rest,
    frozen_bn). When several variants are present, every key gets the options that differ between them in
    parentheses, e.g. "synthetic→real (frozen, BN eval)" and "synthetic→real (frozen, BN reestimate)"; options the
    records all share are left out. Keys are ordered synthetic→real, real→synthetic, others; within a direction the
    paper's setting (frozen, rest reinit, BN eval) comes first. Records without `source_side` or `side` are skipped.

    The records must come from one model family (their N are layers of different networks otherwise): a ValueError
    names the families when they do not.
    """
    transfers = transfer_records(records)
    families = by_model(transfers)
    if len(families) > 1:
        raise ValueError(f"layer sweep over several model families {list(families)}: split the records by_model first")
    variants = {_variant(r) for r in transfers}
    varying = tuple(len({v[i] for v in variants}) > 1 for i in range(3))
    groups: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in transfers:
        groups[(f"{r.source_side}→{r.side}", _variant(r))][r.n_transferred].append(r.top1)
    sweep: dict[str, dict[int, Summary]] = {}
    for direction, variant in sorted(groups, key=lambda k: (_direction_order(k[0]), _variant_order(k[1]))):
        key = f"{direction} ({_variant_label(variant, varying)})" if any(varying) else direction
        by_n = groups[(direction, variant)]
        sweep[key] = {n: summarize(by_n[n]) for n in sorted(by_n)}
    return sweep


def layer_baselines(records: Iterable[ResultRecord]) -> dict[str, Summary]:
    """{"R": Summary, "S": Summary} of the from-scratch baselines on the real / synthetic side (each if present)."""
    return {name: summarize([r.top1 for r in group]) for name, group in side_baselines(list(records)).items()}


def recovered_percent(top1: float, r: float, s: float) -> float:
    """Share of the gap R − S that a student recovers: (top-1 − S) / (R − S), in percent."""
    return 100.0 * (top1 - s) / (r - s)


def layer_table_lines(
    sweep: dict[str, dict[int, Summary]], baselines: dict[str, Summary], *, num_layers: int = LEGACY_NUM_LAYERS
) -> list[str]:
    """Markdown: one row per N, one column per curve, then R and S rows (repeated in each column).

    `num_layers`: the family's layer count L (`tables.num_layers(records)`); the default, ResNet-18's, is for sweeps
    written by hand.
    """
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
        f"the model trained on the first-named data, layers N+1..{num_layers} trained on the second.",
        "",
        "| N | " + " | ".join(md_text(k) for k in keys) + " |",
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


def gap_reading(
    sweep: dict[str, dict[int, Summary]], baselines: dict[str, Summary], *, num_layers: int = LEGACY_NUM_LAYERS
) -> str:
    """One paragraph of plain language, every number computed from the sweep, the baselines and the family's layer
    count L (`num_layers`, as in `layer_table_lines`): recovery shares at `recovery_ns(L)`, the paper's rule at
    `paper_rule_n(L)`."""
    s2r_key, s2r = _main_curve(sweep, S2R)
    r2s_key, r2s = _main_curve(sweep, R2S)
    r = baselines["R"].mean if "R" in baselines else None
    s = baselines["S"].mean if "S" in baselines else None
    gap = r - s if r is not None and s is not None else None
    recovery_at, rule_n = recovery_ns(num_layers), paper_rule_n(num_layers)
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
        out.append(f"Curves read: {' and '.join(md_text(v) for v in variants)}.")

    if s2r:
        if gap is not None and gap > 0:
            at = [n for n in recovery_at if n in s2r]
            if at:
                shares = ", ".join(f"{recovered_percent(s2r[n], r, s):.0f}% at N = {n}" for n in at)
                out.append(
                    "Share of the gap recovered with layers 1..N from the synthetic-trained model and the rest "
                    f"trained on real data (synthetic→real; recovered = (top-1(N) − S) / (R − S)): {shares}."
                )
            if 0 in s2r and 0 in r2s and s2r[0] > r2s[0]:  # same-recipe references: N = 0 trains from scratch
                r0, s0 = s2r[0], r2s[0]
                at = [n for n in recovery_at if n in s2r]
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
    if gap is not None and gap > 0 and rule_n in s2r:
        kept = recovered_percent(s2r[rule_n], r, s)
        verdict = "match" if kept >= PAPER_RULE_MIN_RECOVERED else "do not match"
        out.append(
            f"Rule for {finding}: the student whose first {rule_n} layers come from synthetic data must "
            f"still recover at least {PAPER_RULE_MIN_RECOVERED:.0f}% of the gap; it recovers {kept:.0f}%, so these "
            f"results {verdict} that finding."
        )
    else:
        out.append(
            f"Whether this matches {finding} cannot be decided here: that needs R, S with R > S, and "
            f"synthetic→real at N = {rule_n}."
        )
    return " ".join(out)


@section("layer_transfer", kinds=("layer_transfer",), order=30)
def layer_transfer_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The layer-wise transfer section; draws the layer_sweep figure as a side effect. Empty without a sweep."""
    sweep = layer_sweep(records)
    if not sweep:
        return []
    baselines = layer_baselines(records)
    layers = num_layers(transfer_records(records))
    plot_layer_sweep(sweep, baselines, scope.figure_path("layer_sweep"), num_layers=layers)
    return [
        scope.heading("Layer-wise transfer"),
        "",
        f"![Layer-wise transfer (Figure 2)]({scope.figure('layer_sweep')})",
        "",
        *layer_table_lines(sweep, baselines, num_layers=layers),
        "",
        gap_reading(sweep, baselines, num_layers=layers),
        "",
    ]
