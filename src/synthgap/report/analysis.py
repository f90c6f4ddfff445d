"""The report's per-layer diagnostics section, from `synthgap analyze`'s rows (analysis.jsonl) and the results.

`analysis_lines(records, analysis_rows, folder)` returns the Markdown lines and draws three figures into
`folder`/figures/: analysis_cka.png (CKA(R, S) against the layer, with the seed noise floor), analysis_probes.png
(linear-probe top-1 of R and S against the layer) and analysis_domain_gap.png (FD / tr Σ_real, KID and
precision/recall of the synthetic against the real training images in R's and S's features). Every number in the
text is computed from the rows; "FD" and "KID" always name the network whose features they use, never FID.

When the folder also holds a synthetic→real layer sweep of the same family, the section ends with the Spearman rank
correlation of each diagnostic's per-layer curve (at layer N) with the sweep's recovered share of the gap
(top-1(N) − S) / (R − S), and compares the layers each would name (`synthgap.analysis.summary` has the rules).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from synthgap.analysis.rows import AnalysisRow
from synthgap.analysis.summary import cka_below_floor, first_from, noise_floor, overall, probe_behind, spearman, where
from synthgap.experiments.results import ResultRecord
from synthgap.report.layers import S2R, layer_baselines, layer_sweep, recovered_percent
from synthgap.report.palette import BLACK, R_COLOR, S_COLOR
from synthgap.report.tables import model_name
from synthgap.report.text import md_text

FIGURES = {
    "cka": "figures/analysis_cka.png",
    "probes": "figures/analysis_probes.png",
    "gap": "figures/analysis_domain_gap.png",
}
_COLORS = {"R": R_COLOR, "S": S_COLOR}
_NAMES = {"R": "R (trained on real)", "S": "S (trained on synthetic)"}
SWEEP_HALF = 50.0  # the sweep "finds" the gap at N from which the recovered share stays below this (%)


def analysis_lines(
    records: list[ResultRecord], analysis_rows: list[AnalysisRow], folder: Path, *, figures: Path | None = None
) -> list[str]:
    """The Markdown section (empty without rows); draws its figures into `figures` (default `folder`/figures/;
    the report draws into a staging folder that becomes figures/ once every figure is drawn)."""
    if not analysis_rows:
        return []
    rows = list(analysis_rows)
    model, layers = rows[0].model, rows[0].num_layers
    family = [r for r in records if model_name(r) == model]
    figures = Path(figures) if figures is not None else Path(folder) / "figures"
    _plot_cka(rows, figures / Path(FIGURES["cka"]).name, layers)
    _plot_probes(rows, family, figures / Path(FIGURES["probes"]).name, layers)
    _plot_gap(rows, figures / Path(FIGURES["gap"]).name, layers)
    return [
        f"## Per-layer diagnostics of R and S ({md_text(model)})",
        "",
        settings_line(rows),
        "",
        f"![CKA of R and S per layer]({FIGURES['cka']})",
        "",
        f"![Linear probes per layer]({FIGURES['probes']})",
        "",
        f"![Synthetic vs real training images per layer]({FIGURES['gap']})",
        "",
        *diagnostics_table(rows),
        "",
        diagnostics_reading(rows),
        "",
        *sweep_comparison_lines(family, rows),
    ]


# --- text ------------------------------------------------------------------------------------------------------------


def _first(rows: list[AnalysisRow], measure: str, **match) -> AnalysisRow | None:
    return next(
        (
            r
            for r in rows
            if r.measure == measure and r.class_name is None and all(getattr(r, k) == v for k, v in match.items())
        ),
        None,
    )


def settings_line(rows: list[AnalysisRow]) -> str:
    """Which networks and how many images each measure used."""
    cka = _first(rows, "cka", pair="R~S")
    probe = _first(rows, "probe_top1", student="R")
    gap = _first(rows, "kid", student="R")
    runs = {r.student: r.runs[0] for r in rows if r.measure == "probe_top1"}
    parts = [f"R = {md_text(runs.get('R'))}, S = {md_text(runs.get('S'))}, {rows[0].num_layers} layers."]
    if cka:
        floors = [p for p in ("R~R", "S~S") if _first(rows, "cka", pair=p)]
        floor = f"seed noise floor from {' and '.join(floors)}" if floors else "no seed noise floor (one seed per side)"
        parts.append(
            f"CKA: linear, unbiased HSIC summed over minibatches of {cka.settings.get('minibatch')} of "
            f"{cka.images.get('test')} real test images, layer outputs flattened; {floor}."
        )
    if probe:
        parts.append(
            f"Linear probes: logistic regression (L-BFGS, L2 {probe.settings.get('l2')}) on pooled features of "
            f"{probe.images.get('train')} real training images, tested on {probe.images.get('test')} real test images."
        )
    if gap:
        parts.append(
            f"Domain gap: {gap.images.get('synthetic')} synthetic against {gap.images.get('real')} real training "
            "images in each student's pooled layer-N features (FD on R's / S's features, not FID)."
        )
    return " ".join(parts)


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def diagnostics_table(rows: list[AnalysisRow]) -> list[str]:
    """One row per layer: CKA(R, S), the noise floor, probe top-1 of R and S, FD / tr Σ_real and KID in R's and S's
    features."""
    columns = [
        ("CKA R~S", overall(rows, "cka", pair="R~S"), ".3f"),
        ("noise floor", noise_floor(rows), ".3f"),
        ("probe R (%)", overall(rows, "probe_top1", student="R"), ".1f"),
        ("probe S (%)", overall(rows, "probe_top1", student="S"), ".1f"),
        ("FD/trΣ on R", overall(rows, "fd", student="R", key="relative"), ".3f"),
        ("FD/trΣ on S", overall(rows, "fd", student="S", key="relative"), ".3f"),
        ("KID on R", overall(rows, "kid", student="R"), ".4f"),
        ("KID on S", overall(rows, "kid", student="S"), ".4f"),
    ]
    columns = [c for c in columns if c[1]]
    lines = ["| layer | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for layer in range(1, rows[0].num_layers + 1):
        lines.append(f"| {layer} | " + " | ".join(_cell(c[1].get(layer), c[2]) for c in columns) + " |")
    return lines


def _largest_drops(curve: dict[int, float], count: int = 2) -> str:
    steps = [(curve[b] - curve[a], a, b) for a, b in zip(curve, list(curve)[1:], strict=False) if b == a + 1]
    drops = sorted(s for s in steps if s[0] < 0)[:count]
    return ", ".join(f"layer {a} → {b} ({d:+.2f})" for d, a, b in drops)


def diagnostics_reading(rows: list[AnalysisRow]) -> str:
    """One computed paragraph: which layers diverge, where the S-probe falls behind, how the domain gap grows."""
    out: list[str] = []
    last = rows[0].num_layers
    cka = overall(rows, "cka", pair="R~S")
    if cka:
        low = min(cka, key=cka.get)
        out.append(
            f"CKA(R, S) is {cka[min(cka)]:.2f} at layer {min(cka)} and {cka[max(cka)]:.2f} at layer {max(cka)}, "
            f"lowest {cka[low]:.2f} at layer {low}."
        )
        drops = _largest_drops(cka)
        if drops:
            out.append(f"Its largest drops: {drops}.")
        below = cka_below_floor(rows)
        if below is None:
            out.append("With one seed per side there is no seed noise floor, so CKA alone names no diverging layer.")
        else:
            text = where(below)
            out.append(
                f"R and S are less alike than two seeds of one side {text}."
                if text
                else "R and S stay as alike as two seeds of one side at every layer."
            )
    probes = {s: overall(rows, "probe_top1", student=s) for s in ("R", "S")}
    if probes["R"] and probes["S"]:
        flags = probe_behind(rows)
        first, _ = first_from(flags)
        if first is None:
            out.append("The S-probe never falls behind the R-probe by more than two standard errors.")
        else:
            out.append(
                f"The S-probe falls behind the R-probe by more than two standard errors {where(flags)}; at layer "
                f"{first} the probes reach R {probes['R'][first]:.1f}% and S {probes['S'][first]:.1f}%."
            )
        penultimate = last - 1
        if penultimate in probes["R"] and penultimate in probes["S"] and penultimate != first:
            out.append(
                f"At layer {penultimate}, the last before the classifier layer, they reach R "
                f"{probes['R'][penultimate]:.1f}% and S {probes['S'][penultimate]:.1f}%."
            )
    for student in ("R", "S"):
        fd = overall(rows, "fd", student=student, key="relative")
        if len(fd) >= 2:
            high = max(fd, key=fd.get)
            peak = f" (highest {fd[high]:.3f} at layer {high})" if high not in (min(fd), max(fd)) else ""
            out.append(
                f"In {student}'s features, FD / tr Σ_real between synthetic and real training images goes from "
                f"{fd[min(fd)]:.3f} at layer {min(fd)} to {fd[max(fd)]:.3f} at layer {max(fd)}{peak}."
            )
    precision = {s: overall(rows, "precision", student=s) for s in ("R", "S")}
    recall = {s: overall(rows, "recall", student=s) for s in ("R", "S")}
    at = last - 1
    if all(at in c for c in (*precision.values(), *recall.values())):
        out.append(
            f"At layer {at}, precision / recall of the synthetic images (k = 3 manifolds) are "
            f"{precision['R'][at]:.2f} / {recall['R'][at]:.2f} in R's features and "
            f"{precision['S'][at]:.2f} / {recall['S'][at]:.2f} in S's."
        )
    return " ".join(out)


# --- the layer sweep -------------------------------------------------------------------------------------------------

_DIAGNOSTICS = (  # (label, expected sign of the rank correlation with the recovered share)
    ("CKA(R, S)", +1),
    ("probe top-1, S − R", +1),
    ("FD / tr Σ_real on R's features", -1),
    ("FD / tr Σ_real on S's features", -1),
    ("KID on R's features", -1),
    ("KID on S's features", -1),
    ("precision on S's features", +1),
    ("recall on S's features", +1),
)


def diagnostic_curves(rows: list[AnalysisRow]) -> dict[str, dict[int, float]]:
    """Each diagnostic's per-layer curve, by the labels of the sweep table."""
    r, s = overall(rows, "probe_top1", student="R"), overall(rows, "probe_top1", student="S")
    curves = {
        "CKA(R, S)": overall(rows, "cka", pair="R~S"),
        "probe top-1, S − R": {n: s[n] - r[n] for n in r if n in s},
    }
    for student in ("R", "S"):
        curves[f"FD / tr Σ_real on {student}'s features"] = overall(rows, "fd", student=student, key="relative")
        curves[f"KID on {student}'s features"] = overall(rows, "kid", student=student)
    curves["precision on S's features"] = overall(rows, "precision", student="S")
    curves["recall on S's features"] = overall(rows, "recall", student="S")
    return curves


def recovered_shares(records: list[ResultRecord]) -> dict[int, float]:
    """{N: recovered share of the gap (%)} of the synthetic→real sweep; empty without a sweep or a positive gap."""
    shares, _ = _recovered(records)
    return shares


def _recovered(records: list[ResultRecord]) -> tuple[dict[int, float], str]:
    """The recovered shares, or {} and why there are none ("" when there is no synthetic→real sweep at all)."""
    sweep = layer_sweep(records)
    key = next((k for k in sweep if k == S2R or k.startswith(f"{S2R} (")), None)
    if key is None:
        return {}, ""
    baselines = layer_baselines(records)
    if "R" not in baselines or "S" not in baselines:
        return {}, "the results lack the R or the S baseline"
    r, s = baselines["R"].mean, baselines["S"].mean
    if r <= s:
        return {}, f"S is not below R (R {r:.2f}%, S {s:.2f}%)"
    return {n: recovered_percent(summary.mean, r, s) for n, summary in sweep[key].items()}, ""


def _found(flags: dict[int, bool] | None, ns: list[int]) -> int | None:
    """The first N (of the sweep's N) from which a diagnostic's flag holds at every later such N."""
    if flags is None:
        return None
    at_ns = {n: flags[n] for n in ns if n in flags}
    return next((n for n in sorted(at_ns) if all(at_ns[m] for m in at_ns if m >= n)), None)


def sweep_comparison_lines(records: list[ResultRecord], rows: list[AnalysisRow]) -> list[str]:
    """Spearman ρ of each diagnostic with the sweep's recovered share, and the layers each would name."""
    recovered, why_not = _recovered(records)
    if not recovered:
        if not why_not:
            return []
        return [
            "### Diagnostics against the layer sweep",
            "",
            f"This folder holds a synthetic→real layer sweep, but {why_not}, so there is no share of the gap to "
            "compare the diagnostics with.",
            "",
        ]
    lines = [
        "### Diagnostics against the layer sweep",
        "",
        "Spearman rank correlation, over the sweep's N, between each diagnostic at layer N and the share of the gap "
        "recovered by the synthetic→real student with layers 1..N from S, (top-1(N) − S) / (R − S).",
        "",
        "| diagnostic | Spearman ρ | layers compared | expected sign | sign as expected |",
        "|---|---|---|---|---|",
    ]
    curves = diagnostic_curves(rows)
    for label, sign in _DIAGNOSTICS:
        curve = curves.get(label) or {}
        ns = [n for n in sorted(recovered) if n in curve]
        rho = spearman([curve[n] for n in ns], [recovered[n] for n in ns])
        if rho is None:
            continue
        expected = "+" if sign > 0 else "−"
        lines.append(f"| {label} | {rho:+.2f} | {len(ns)} | {expected} | {'yes' if rho * sign > 0 else 'no'} |")
    lines += ["", _layers_reading(recovered, rows), ""]
    return lines


def _layers_reading(recovered: dict[int, float], rows: list[AnalysisRow]) -> str:
    ns = [n for n in sorted(recovered) if 1 <= n <= rows[0].num_layers]  # N = 0 (from scratch) has no layer
    sweep_n = _found({n: v < SWEEP_HALF for n, v in recovered.items()}, ns)
    probe_n = _found(probe_behind(rows), ns)
    cka_flags = cka_below_floor(rows)
    cka_n = _found(cka_flags, ns)
    out = [f"At the sweep's N ({', '.join(str(n) for n in ns)}):"]
    if sweep_n is None:
        out.append(f"the sweep never stays below {SWEEP_HALF:.0f}% of the gap recovered, so it names no layer;")
    else:
        out.append(f"the sweep recovers less than {SWEEP_HALF:.0f}% of the gap from N = {sweep_n} on;")
    out.append(_verdict("the linear probes (S-probe behind)", probe_n, sweep_n) + ";")
    if cka_flags is None:
        out.append("CKA has no seed noise floor here (one seed per side), so it names no layer.")
    else:
        out.append(_verdict("CKA (below the seed noise floor)", cka_n, sweep_n) + ".")
    out.append(
        "Both the recovered share and most diagnostics change with depth, so part of any rank correlation is depth "
        "itself; FD and KID of different layers are measured in different feature spaces."
    )
    return " ".join(out)


def _verdict(name: str, found: int | None, sweep_n: int | None) -> str:
    if found is None:
        text = f"{name} would have named no layer"
        return text + (" — unlike the sweep" if sweep_n is not None else ", like the sweep")
    text = f"{name} would have named N = {found} on"
    if sweep_n is None:
        return text + ", where the sweep names none"
    if found == sweep_n:
        return text + ", the same layer as the sweep"
    return text + f", {abs(found - sweep_n)} layer(s) {'earlier' if found < sweep_n else 'later'} than the sweep"


# --- figures ---------------------------------------------------------------------------------------------------------


def _width(layers: int) -> float:
    return min(14.0, max(7.0, 0.28 * layers))


def _axis(ax, layers: int, ylabel: str) -> None:
    """Layers on x: a tick at every layer up to 20 layers, else every 2nd / 5th (and the last)."""
    step = 1 if layers <= 20 else 2 if layers <= 40 else 5
    ax.set_xticks(sorted({1, *range(step, layers + 1, step), layers}))
    ax.set_xlim(0.5, layers + 0.5)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.35)


def _look(handle) -> tuple:
    """What a legend row looks like (colour, line style, marker): two rows that look alike cannot be told apart."""
    line = handle.lines[0] if isinstance(handle, ErrorbarContainer) else handle
    if isinstance(line, Line2D):
        return (str(line.get_color()), str(line.get_linestyle()), str(line.get_marker()))
    return (id(handle),)


def legend_entries(fig: Figure) -> tuple[list, list[str]]:
    """The legend rows of every axes of `fig`, each label and each look once (the panels share their students, so
    the same row would otherwise repeat)."""
    handles, labels, looks = [], [], set()
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            look = _look(handle)
            if label not in labels and look not in looks:
                handles.append(handle)
                labels.append(label)
                looks.add(look)
    return handles, labels


def _save(fig: Figure, path: Path) -> None:
    """Legend below the axes (curves cross the whole plot, so a legend inside would cover data), then the PNG."""
    handles, labels = legend_entries(fig)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)


def _line(ax, curve: dict[int, float], **style) -> None:
    if curve:
        ax.plot(list(curve), list(curve.values()), **style)


def _plot_cka(rows: list[AnalysisRow], path: Path, layers: int) -> None:
    fig = Figure(figsize=(_width(layers), 4.8), layout="constrained")
    ax = fig.add_subplot()
    _line(ax, overall(rows, "cka", pair="R~S"), color=BLACK, marker="o", label="CKA(R, S)")
    for pair, color in (("R~R", _COLORS["R"]), ("S~S", _COLORS["S"])):
        label = f"noise floor: CKA of two seeds of {pair[0]}"
        _line(ax, overall(rows, "cka", pair=pair), color=color, linestyle="--", marker=".", label=label)
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05)
    _axis(ax, layers, "linear CKA (unbiased, minibatch)")
    ax.set_title("Representation similarity of R and S on real test images")
    _save(fig, path)


def _plot_probes(rows: list[AnalysisRow], records: list[ResultRecord], path: Path, layers: int) -> None:
    fig = Figure(figsize=(_width(layers), 4.8), layout="constrained")
    ax = fig.add_subplot()
    for student in ("R", "S"):
        probe = [r for r in rows if r.measure == "probe_top1" and r.student == student and r.value is not None]
        probe.sort(key=lambda r: r.layer)
        if probe:
            ax.errorbar(
                [r.layer for r in probe],
                [r.value for r in probe],
                yerr=[r.details.get("standard_error", 0.0) for r in probe],
                color=_COLORS[student],
                marker="o",
                markersize=4,
                capsize=2,
                label=f"probe on {_NAMES[student]} (± standard error)",
            )
    baselines = layer_baselines(records)
    for name in ("R", "S"):
        if name in baselines:
            label = f"{name} itself: {baselines[name]}"
            ax.axhline(baselines[name].mean, color=_COLORS[name], linestyle=":", linewidth=1.2, label=label)
    _axis(ax, layers, "probe top-1 (%) on the real test set")
    ax.set_title("Linear probes on each layer's pooled features")
    _save(fig, path)


def _plot_gap(rows: list[AnalysisRow], path: Path, layers: int) -> None:
    fig = Figure(figsize=(_width(layers), 9.5), layout="constrained")
    fd_ax, kid_ax, pr_ax = fig.subplots(3, 1, sharex=True)
    for student in ("R", "S"):
        style = {"color": _COLORS[student], "marker": "o", "markersize": 3}
        features = f"in {student}'s features"
        # one legend row per look: the solid lines of a student (FD, KID, precision) share one
        _line(fd_ax, overall(rows, "fd", student=student, key="relative"), label=features, **style)
        _line(kid_ax, overall(rows, "kid", student=student), label=features, **style)
        _line(pr_ax, overall(rows, "precision", student=student), label=features, **style)
        style["linestyle"] = "--"
        _line(pr_ax, overall(rows, "recall", student=student), label=f"recall (dashed), {features}", **style)
    _axis(fd_ax, layers, "FD / tr Σ_real")
    _axis(kid_ax, layers, "KID (unbiased MMD²)")
    _axis(pr_ax, layers, "share (k = 3 manifolds)")
    for ax in (fd_ax, kid_ax):
        ax.set_xlabel("")  # the axes share x: one label at the bottom
    fd_ax.set_title("Fréchet distance, relative to the real features' total variance")
    kid_ax.set_title("Kernel distance (KID's cubic polynomial kernel)")
    pr_ax.set_title("Precision (solid) and recall (dashed) of the synthetic images")
    fig.suptitle("Synthetic vs real training images in each student's layer features")
    _save(fig, path)
