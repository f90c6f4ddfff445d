"""Tables computed from result records (never from anything but results.jsonl), and the shared readers of a record's
side and model family.

Sides: a record's `side` ("real" / "synthetic") is the only thing that says which side trained it. R is the
from-scratch baseline whose side is "real", S the one whose side is "synthetic". Records without a `side` (written by
old versions) have no side: the report lists them with every run but never uses them as R or S, whatever their data
are called.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass

from synthgap.experiments.results import ResultRecord
from synthgap.report.text import md_text

# Records written before `model` / `num_layers` existed all came from ResNet-18, the only family those versions had.
# This is the one place the report assumes a layer count; everything else reads it from the records.
LEGACY_MODEL = "resnet18"
LEGACY_NUM_LAYERS = 18


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # sample standard deviation; 0 for a single seed
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f}" if self.n > 1 else f"{self.mean:.2f}"


def summarize(values: list[float]) -> Summary:
    return Summary(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))


# --- model families ------------------------------------------------------------------------------------------------


def model_name(record: ResultRecord) -> str:
    """The record's model family (`LEGACY_MODEL` for records written before the field existed)."""
    return record.model or LEGACY_MODEL


def layer_count(record: ResultRecord) -> int:
    """The layer count L of the record's model family (`LEGACY_NUM_LAYERS` for records written without one)."""
    return record.num_layers or LEGACY_NUM_LAYERS


def num_layers(records: list[ResultRecord]) -> int:
    """The one layer count L of `records`; a ValueError when they come from families with different counts, whose
    layer numbers N must never share an axis."""
    counts = sorted({layer_count(r) for r in records})
    if len(counts) > 1:
        raise ValueError(f"records of model families with different layer counts {counts}: split them by_model first")
    return counts[0] if counts else LEGACY_NUM_LAYERS


def by_model(records: list[ResultRecord]) -> dict[str, list[ResultRecord]]:
    """Records per model family, in the order the families first appear."""
    groups: dict[str, list[ResultRecord]] = defaultdict(list)
    for record in records:
        groups[model_name(record)].append(record)
    return dict(groups)


def file_tag(model: str) -> str:
    """A model name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model)


# --- baselines and sides -------------------------------------------------------------------------------------------


def baseline_top1(records: list[ResultRecord]) -> dict[str, list[float]]:
    """Top-1 of from-scratch baselines, grouped by training data, in the order they first appear."""
    groups: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.kind == "baseline":
            groups[record.target].append(record.top1)
    return dict(groups)


def side_baselines(records: list[ResultRecord]) -> dict[str, list[ResultRecord]]:
    """{"R": [...], "S": [...]}: the baselines whose recorded side is "real" / "synthetic" (each only if present).

    When several data sets were trained on one side, the first one in the results is that side's baseline.
    Baselines without a side are never R or S.
    """
    out: dict[str, list[ResultRecord]] = {}
    for name, side in (("R", "real"), ("S", "synthetic")):
        on_side = [r for r in records if r.kind == "baseline" and r.side == side]
        if on_side:
            out[name] = [r for r in on_side if r.target == on_side[0].target]
    return out


def seed_baselines(records: list[ResultRecord]) -> dict[int, tuple[float, float]]:
    """{seed: (R top-1, S top-1)} for the seeds with both baselines."""
    sides = side_baselines(records)
    r = {rec.seed: rec.top1 for rec in sides.get("R", [])}
    s = {rec.seed: rec.top1 for rec in sides.get("S", [])}
    return {seed: (r[seed], s[seed]) for seed in r if seed in s}


def gap_lines(records: list[ResultRecord]) -> list[str]:
    """A Markdown table of baselines (mean ± std over seeds) and, when both sides exist, the gap R − S in pp.

    Records that carry `balanced_top1` (mean per-class top-1, which an imbalanced test set does not tilt) add a
    column for it and a balanced gap line; files written before it existed read as they always did."""
    groups = baseline_top1(records)
    if not groups:
        return []
    balanced = baseline_balanced(records)
    if balanced:
        lines = [
            "| training data | seeds | top-1 (%) on real test | balanced top-1 (%) |",
            "|---|---|---|---|",
        ]
    else:
        lines = ["| training data | seeds | top-1 (%) on real test |", "|---|---|---|"]
    for target, values in groups.items():
        extra = ""
        if balanced:
            extra = f" {balanced_cell(balanced.get(target, []), len(values))} |"
        lines.append(f"| {md_text(target)} | {len(values)} | {summarize(values)} |{extra}")
    sided = side_baselines(records)
    if "R" in sided and "S" in sided:
        r = summarize([x.top1 for x in sided["R"]])
        s = summarize([x.top1 for x in sided["S"]])
        paired = _paired_gaps(sided["R"], sided["S"])
        spread = f" (per-seed gaps {summarize(paired)})" if len(paired) > 1 else ""
        lines += ["", f"**Gap R − S: {r.mean - s.mean:.2f} pp**{spread}"]
        r_bal = [x.balanced_top1 for x in sided["R"] if x.balanced_top1 is not None]
        s_bal = [x.balanced_top1 for x in sided["S"] if x.balanced_top1 is not None]
        if r_bal and s_bal:
            gap = summarize(r_bal).mean - summarize(s_bal).mean
            lines += ["", f"Balanced gap R − S (mean per-class top-1, each class weighted equally): {gap:.2f} pp."]
    return lines


def baseline_balanced(records: list[ResultRecord]) -> dict[str, list[float]]:
    """Balanced top-1 of from-scratch baselines that recorded it, grouped by training data."""
    groups: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.kind == "baseline" and record.balanced_top1 is not None:
            groups[record.target].append(record.balanced_top1)
    return dict(groups)


def balanced_cell(values: list[float], seeds: int) -> str:
    """Mean ± std of the balanced top-1 of a group; the count when fewer seeds recorded it than ran; "–" for none."""
    if not values:
        return "–"
    return str(summarize(values)) + (f" (n={len(values)})" if len(values) != seeds else "")


def _paired_gaps(real: list[ResultRecord], synthetic: list[ResultRecord]) -> list[float]:
    """R − S per seed, for the seeds both sides have (the last record of a seed counts)."""
    r_by_seed = {x.seed: x.top1 for x in real}
    s_by_seed = {x.seed: x.top1 for x in synthetic}
    return [r_by_seed[seed] - s_by_seed[seed] for seed in r_by_seed if seed in s_by_seed]
