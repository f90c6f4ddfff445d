"""Report figures drawn with matplotlib's object API (no pyplot state, no display: PNG via the Agg canvas)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from synthgap.report.tables import Summary

_CURVE_STYLES = [("tab:blue", "o"), ("tab:orange", "s"), ("tab:purple", "^"), ("tab:brown", "D"), ("tab:pink", "v")]
_BASELINE_STYLES = {"R": ("tab:green", "R (trained on real)"), "S": ("tab:red", "S (trained on synthetic)")}


def plot_layer_sweep(sweep: dict[str, dict[int, Summary]], baselines: dict[str, Summary], path: Path) -> Path:
    """Top-1 against N per curve (error bars: std over seeds), R and S as dashed lines with ±std bands."""
    path = Path(path)
    fig = Figure(figsize=(8, 5.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (key, curve) in enumerate(sweep.items()):
        color, marker = _CURVE_STYLES[i % len(_CURVE_STYLES)]
        ns = sorted(curve)
        spread = any(curve[n].n > 1 for n in ns)
        ax.errorbar(
            ns,
            [curve[n].mean for n in ns],
            yerr=[curve[n].std for n in ns] if spread else None,
            color=color,
            marker=marker,
            markersize=5,
            linewidth=1.6,
            capsize=3,
            label=key,
        )
    for name, (color, label) in _BASELINE_STYLES.items():
        if name not in baselines:
            continue
        b = baselines[name]
        ax.axhline(b.mean, color=color, linestyle="--", linewidth=1.4, label=f"{label}: {b}")
        if b.n > 1 and b.std > 0:
            ax.axhspan(b.mean - b.std, b.mean + b.std, color=color, alpha=0.12, linewidth=0)
    all_ns = {n for curve in sweep.values() for n in curve}
    ticks = sorted(set(range(1, 18)) | all_ns)
    ax.set_xticks(ticks)
    ax.set_xlim(min(ticks) - 0.5, max(ticks) + 0.5)
    ax.set_xlabel("N = layers 1..N transferred from the source model (rest trained on the target data)")
    ax.set_ylabel("top-1 (%) on the real test set")
    ax.set_title("Layer-wise transfer (Figure 2)")
    ax.grid(True, alpha=0.35)
    # Below the axes: curves cross the middle of the plot, so any legend inside would cover data.
    # Curves first, then the baselines (matplotlib lists plain lines before error-bar containers).
    entries = sorted(zip(*ax.get_legend_handles_labels(), strict=True), key=lambda e: e[1] not in sweep)
    if entries:
        handles, labels = zip(*entries, strict=True)
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path
