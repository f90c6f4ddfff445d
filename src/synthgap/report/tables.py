"""Tables computed from result records (never from anything but results.jsonl)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from synthgap.experiments.results import ResultRecord


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # sample standard deviation; 0 for a single seed
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f}" if self.n > 1 else f"{self.mean:.2f}"


def summarize(values: list[float]) -> Summary:
    return Summary(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))


def baseline_top1(records: list[ResultRecord]) -> dict[str, list[float]]:
    """Top-1 of from-scratch baselines, grouped by training data, in the order they first appear."""
    groups: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.kind == "baseline":
            groups[record.target].append(record.top1)
    return dict(groups)


def find_real_and_synthetic(targets: list[str]) -> tuple[str | None, str | None]:
    """Which training data is the real side and which the synthetic one (by the data reference's side name)."""
    real = next((t for t in targets if t.endswith(":real")), None)
    synthetic = next((t for t in targets if t.endswith(":synthetic") or t.startswith("generated:")), None)
    return real, synthetic


def record_side(record: ResultRecord) -> str:
    """'real' / 'synthetic': the side a run trained on, as the runner records it, else read from the data's name
    (results of `synthgap train`); the name itself when neither says."""
    return (record.model_extra or {}).get("side") or side(record.target)


def side(reference: str) -> str:
    """'real' / 'synthetic' for a data reference, or the reference itself when its side is unknown."""
    real, synthetic = find_real_and_synthetic([reference])
    return "real" if real else "synthetic" if synthetic else reference


def real_and_synthetic_targets(records: list[ResultRecord]) -> tuple[str | None, str | None]:
    """The training data of the real and of the synthetic baselines (any data set names)."""
    sides = {r.target: record_side(r) for r in records if r.kind == "baseline"}
    real = next((t for t, s in sides.items() if s == "real"), None)
    synthetic = next((t for t, s in sides.items() if s == "synthetic"), None)
    return real, synthetic


def gap_lines(records: list[ResultRecord]) -> list[str]:
    """A Markdown table of baselines (mean ± std over seeds) and, when both sides exist, the gap R − S in pp."""
    groups = baseline_top1(records)
    if not groups:
        return []
    lines = ["| training data | seeds | top-1 (%) on real test |", "|---|---|---|"]
    for target, values in groups.items():
        lines.append(f"| {target} | {len(values)} | {summarize(values)} |")
    real, synthetic = real_and_synthetic_targets(records)
    if real and synthetic:
        r, s = summarize(groups[real]), summarize(groups[synthetic])
        paired = _paired_gaps(records, real, synthetic)
        spread = f" (per-seed gaps {summarize(paired)})" if len(paired) > 1 else ""
        lines += ["", f"**Gap R − S: {r.mean - s.mean:.2f} pp**{spread}"]
    return lines


def _paired_gaps(records: list[ResultRecord], real: str, synthetic: str) -> list[float]:
    by_seed: dict[int, dict[str, float]] = defaultdict(dict)
    for record in records:
        if record.kind == "baseline" and record.target in (real, synthetic):
            by_seed[record.seed][record.target] = record.top1
    return [v[real] - v[synthetic] for v in by_seed.values() if len(v) == 2]
