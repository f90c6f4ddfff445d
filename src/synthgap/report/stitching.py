"""The model-stitching section: at every cut N, how much of R's accuracy survives when R's layers 1..N are replaced
by the S baseline's (joined by a trained stitch), against the same replacement by R's own layers and by those of
another R; and how that penalty ranks against the layer sweep's recovered share.

Vocabulary: the *penalty* of a stitched student is R − its top-1, with R the receiving baseline of the same seed
(points, on the real test set). The *excess* penalty of S at N is S's penalty minus that of the other R (real_other):
what S's features cost beyond being another network's. A small excess means S's layers 1..N carry what R's later
layers need, up to the stitch's per-position linear map (the features are different, not worse); a large one, that
no such map recovers it from them (they may still serve later layers trained on them: the layer sweep asks that).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from synthgap.analysis.summary import spearman
from synthgap.experiments.kinds.stitching import GIVERS, StitchRecord
from synthgap.experiments.results import ResultRecord
from synthgap.report.layers import S2R, main_variant_records, recovered_percent
from synthgap.report.palette import GREEN, R_COLOR, S_COLOR, seeds_phrase
from synthgap.report.sections import Scope, section
from synthgap.report.tables import Summary, num_layers, seed_baselines, side_baselines, summarize
from synthgap.report.text import figure_text

GIVER_LABELS = {"synthetic": "S → R", "real": "R → R (self)", "real_other": "R' → R (other seed)"}
GIVER_STYLES = {"synthetic": (S_COLOR, "s"), "real": (R_COLOR, "o"), "real_other": (GREEN, "^")}
COMPATIBLE_EXCESS_PP = 1.0  # S's features count as compatible up to N while their excess penalty stays at most this
MIN_RANKED_CUTS = 3  # `spearman` gives none over fewer cuts


def stitch_records(records: Iterable[ResultRecord]) -> list[StitchRecord]:
    return [r for r in records if isinstance(r, StitchRecord)]


def receiver_top1(records: Iterable[ResultRecord]) -> dict[int, float]:
    """The R baseline's top-1 by seed (the model every stitch of that seed feeds)."""
    return {r.seed: r.top1 for r in side_baselines(list(records)).get("R", [])}


@dataclass(frozen=True)
class StitchPoint:
    top1: Summary  # stitched top-1 over seeds
    penalty: Summary  # R − stitched top-1 over seeds (each seed against its own R)
    start: Summary | None  # top-1 at the least-squares start


def stitch_points(records: Iterable[ResultRecord]) -> dict[str, dict[int, StitchPoint]]:
    """{giver: {N: StitchPoint}} in GIVERS order, N ascending; stitches whose seed has no R record are left out."""
    records = list(records)
    receivers = receiver_top1(records)
    groups: dict[str, dict[int, list[StitchRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in stitch_records(records):
        if r.seed in receivers:
            groups[r.giver][r.n_transferred].append(r)
    points: dict[str, dict[int, StitchPoint]] = {}
    for giver in (g for g in GIVERS if g in groups):
        points[giver] = {}
        for n in sorted(groups[giver]):
            group = groups[giver][n]
            starts = [r.start_top1 for r in group if r.start_top1 is not None]
            points[giver][n] = StitchPoint(
                summarize([r.top1 for r in group]),
                summarize([receivers[r.seed] - r.top1 for r in group]),
                summarize(starts) if starts else None,
            )
    return points


def excess_penalty(points: Mapping[str, Mapping[int, StitchPoint]]) -> dict[int, float]:
    """S's mean penalty minus the other R's at every N both have (empty without either)."""
    synthetic, other = points.get("synthetic", {}), points.get("real_other", {})
    return {n: synthetic[n].penalty.mean - other[n].penalty.mean for n in synthetic if n in other}


def sweep_recovered(records: Iterable[ResultRecord]) -> dict[int, float]:
    """The layer sweep's synthetic→real recovered share (%) by N, mean over the seeds with R and S records."""
    records = list(records)
    bases = {seed: (r, s) for seed, (r, s) in seed_baselines(records).items() if r != s}
    by_n: dict[int, list[float]] = defaultdict(list)
    for t in main_variant_records(records, S2R):
        if t.seed in bases:
            by_n[t.n_transferred].append(recovered_percent(t.top1, *bases[t.seed]))
    return {n: float(np.mean(v)) for n, v in sorted(by_n.items())}


def _cell(summary: Summary | None) -> str:
    return "–" if summary is None else str(summary)


def stitch_table(points: Mapping[str, Mapping[int, StitchPoint]], recovered: Mapping[int, float]) -> list[str]:
    givers = list(points)
    header = ["N"] + [f"{GIVER_LABELS[g]} top-1 (penalty)" for g in givers]
    excess = excess_penalty(points)
    if excess:
        header.append("S excess penalty")
    if recovered:
        header.append("sweep: gap recovered")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cuts = sorted({n for curve in points.values() for n in curve})
    for n in cuts:
        row = [str(n)]
        for g in givers:
            point = points[g].get(n)
            row.append("–" if point is None else f"{point.top1} ({point.penalty.mean:+.2f})")
        if excess:
            row.append(f"{excess[n]:+.2f}" if n in excess else "–")
        if recovered:
            row.append(f"{recovered[n]:.0f} %" if n in recovered else "–")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def stitch_reading(points: Mapping[str, Mapping[int, StitchPoint]], recovered: Mapping[int, float]) -> str:
    """What the penalties say: up to which cut S's features are as usable to R as another R's, and how the
    S penalty ranks against the sweep."""
    sentences = []
    excess = excess_penalty(points)
    if excess:
        compatible = [n for n in sorted(excess) if excess[n] <= COMPATIBLE_EXCESS_PP]
        first_bad = next((n for n in sorted(excess) if excess[n] > COMPATIBLE_EXCESS_PP), None)
        worst = max(excess, key=excess.get)
        if first_bad is None:
            sentences.append(
                f"At every cut measured, S's layers cost R at most {COMPATIBLE_EXCESS_PP:.0f} pp more than another R's "
                f"(largest excess {excess[worst]:+.2f} pp at N = {worst}): S's features are different, not worse, "
                "for what R's later layers need."
            )
        else:
            upto = (
                f"up to N = {max(n for n in compatible if n < first_bad)}"
                if any(n < first_bad for n in compatible)
                else "at no cut"
            )
            sentences.append(
                f"S's layers 1..N are as usable to R as another R's (excess penalty ≤ {COMPATIBLE_EXCESS_PP:.0f} pp) "
                f"{upto}; from N = {first_bad} they cost more ({excess[first_bad]:+.2f} pp there, "
                f"{excess[worst]:+.2f} pp at N = {worst}): from that cut no trained stitch maps S's features onto what "
                "R's later layers use."
            )
    self_penalties = points.get("real", {})
    if self_penalties:
        largest = max(self_penalties, key=lambda n: abs(self_penalties[n].penalty.mean))
        change = -self_penalties[largest].penalty.mean
        sentences.append(
            f"The self-stitch control changes R's top-1 by at most {change:+.2f} pp (N = {largest}): what the stitch "
            "itself costs or adds."
        )
    synthetic = points.get("synthetic", {})
    common = [n for n in sorted(synthetic) if n in recovered]
    rho = spearman([synthetic[n].penalty.mean for n in common], [recovered[n] for n in common])
    if rho is not None:
        sentences.append(
            f"Over the {len(common)} cuts both measured, the rank correlation of S's stitching penalty with the "
            f"sweep's recovered share is {rho:+.2f} (Spearman; −1: the larger the penalty, the less the sweep "
            "recovers)."
        )
    elif synthetic:
        sentences.append(
            f"No rank correlation with the layer sweep: it needs the synthetic→real sweep at {MIN_RANKED_CUTS} or "
            "more of the stitched cuts in the same results."
        )
    return " ".join(sentences)


def plot_stitching(
    points: Mapping[str, Mapping[int, StitchPoint]],
    recovered: Mapping[int, float],
    path: Path,
    *,
    num_layers: int,
) -> Path:
    """Left: stitching penalty against N for every giver (±1 std over seeds). Right, when the sweep was measured at
    stitched cuts: the share of the gap the sweep does not recover (100 − recovered) beside S's excess penalty."""
    panels = 2 if recovered and excess_penalty(points) else 1
    fig = Figure(figsize=(6.5 * panels, 4.8), layout="constrained")
    ax = fig.add_subplot(1, panels, 1)
    for giver, curve in points.items():
        color, marker = GIVER_STYLES[giver]
        xs = sorted(curve)
        spread = any(curve[n].penalty.n > 1 for n in xs)
        errors = [curve[n].penalty.std for n in xs] if spread else None
        ax.errorbar(
            xs,
            [curve[n].penalty.mean for n in xs],
            yerr=errors,
            color=color,
            marker=marker,
            capsize=3,
            label=figure_text(GIVER_LABELS[giver]),
        )
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlim(0.5, num_layers - 0.5)
    ax.set_xlabel("cut N (layers 1..N from the giver, N+1.. from R)")
    ax.set_ylabel("stitching penalty: R − stitched top-1 (pp)")
    seeds = seeds_phrase(p.penalty for curve in points.values() for p in curve.values())
    ax.set_title(f"Model stitching into R\n({seeds})")
    ax.grid(True, alpha=0.35)
    ax.legend(loc="best", fontsize=8)
    if panels == 2:
        excess = excess_penalty(points)
        right = fig.add_subplot(1, 2, 2)
        xs = sorted(n for n in excess if n in recovered)
        right.plot(xs, [excess[n] for n in xs], color=S_COLOR, marker="s", label="S excess stitching penalty (pp)")
        right.plot(
            xs,
            [100 - recovered[n] for n in xs],
            color="black",
            marker="o",
            linestyle="--",
            label="sweep: share of the gap not recovered (%)",
        )
        right.set_xlim(0.5, num_layers - 0.5)
        right.set_xlabel("cut N")
        right.set_title("Stitching beside the layer sweep (synthetic→real)")
        right.grid(True, alpha=0.35)
        right.legend(loc="best", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


@section("stitching", kinds=("stitching",), order=35)
def stitching_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The model-stitching section; draws the stitching figure. Empty without stitched students."""
    points = stitch_points(records)
    if not points:
        return []
    recovered = sweep_recovered(records)
    stitches = stitch_records(records)
    plot_stitching(points, recovered, scope.figure_path("stitching"), num_layers=num_layers(stitches))
    epochs = sorted({r.epochs for r in stitches})
    starts = {g: [p.start.mean for p in c.values() if p.start is not None] for g, c in points.items()}
    start_note = ""
    if starts.get("real"):
        start_note = (
            f" At its least-squares start the self-stitch reads {min(starts['real']):.2f}–{max(starts['real']):.2f} %."
        )
    return [
        scope.heading("Model stitching"),
        "",
        f"![Model stitching]({scope.figure('stitching')})",
        "",
        "Layers 1..N of a giver, a trained stitch (1×1 convolution with BatchNorm per feature map; a linear map per "
        f"token for a ViT), then R's layers N+1..L, both models frozen; the stitch trained for "
        f"{', '.join(map(str, epochs))} epoch(s) on the real training images; top-1 on the real test set, penalty = "
        f"R − stitched top-1 (pp).{start_note}",
        "",
        *stitch_table(points, recovered),
        "",
        stitch_reading(points, recovered),
        "",
    ]
