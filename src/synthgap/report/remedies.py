"""The remedies section: every way of closing the gap that the folder holds, ranked under one protocol.

Each remedy (distillation, curation and its random controls, mixing, normalization and AdaBN, augmentation of the
synthetic students, the paper's pathway at each real fraction, other synthetic sources) is a group of records that
differ only in their seed. Its share of the gap is computed per seed against that seed's baselines,
(top-1 − S) / (R − S), then averaged, with a 95 % t-interval over seeds. A share needs a gap to close: where S is
as good as or better than R in any seed (R − S ≤ 0) no share is computed, and remedies are compared by top-1. Beside
it: the real labels and real images its student used (a teacher's own training is not counted: it is R itself, named
by its fingerprint in the records) and its training seconds.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from synthgap.experiments.results import ResultRecord
from synthgap.report.ablations import MixingArm, normalization_label
from synthgap.report.sections import Scope, section
from synthgap.report.tables import seed_baselines, side_baselines
from synthgap.report.text import figure_text, md_text

# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (then the normal 1.96).
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
NO_LABELS, WITH_LABELS = "#0072B2", "#E69F00"  # Okabe–Ito blue and orange: safe for colour-blind readers
CLASS_NOTE_PP = 3.0  # a class's mean change must exceed this (pp) to be named as fixed or broken


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:.1f} (1 seed)"
        return f"{self.mean:.1f} [{self.low:.1f}, {self.high:.1f}]"


def interval(values: list[float]) -> Interval:
    """Mean and 95 % t-interval over seeds (degenerate for one seed)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, mean, mean, len(values))
    df = len(values) - 1
    half = (T_975[df - 1] if df <= len(T_975) else 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, len(values))


def remedy_label(record: ResultRecord) -> str | None:
    """The remedy a record measures (None: not a remedy, e.g. a baseline or a layer-sweep student)."""
    kind = record.kind
    if kind == "distillation":
        if getattr(record, "student", "") == "transfer":
            return None  # the distilled student as a layer source: its own table
        extra = " + unlabelled real" if getattr(record, "unlabelled_real", False) else ""
        teacher = "" if str(getattr(record, "teacher", "")).startswith("R baseline") else f" ({record.teacher})"
        return f"distillation T={record.temperature:g} α={record.alpha:g}{extra}{teacher}"
    if kind == "curation":
        size = f"keep {record.keep:g}" if record.keep is not None else f"score ≥ {record.threshold:g}"
        if record.control:
            return f"random subset, {size}" + (f" (like {record.matched})" if record.matched else "")
        return f"curation {record.score}, {size}"
    if kind == "data_reduction" and record.n_transferred:
        return f"synthetic 1..{record.n_transferred} frozen + rest on 1/{record.x:g} of real"
    if kind == "ablation":
        ablation = getattr(record, "ablation", "")
        if ablation == "mixing":
            return f"mixing: {MixingArm(record.mixing, record.synthetic_share, record.added_synthetic).label}"
        if ablation == "normalization":
            if record.normalization == "imagenet" and not record.adabn:
                return None  # the S student itself (the default constants)
            return normalization_label(record.normalization, record.adabn) + (" on the real images" * record.adabn)
        if ablation == "augmentation" and record.side == "synthetic":
            return f"augmentation {record.augmentation} (synthetic)"
        if ablation == "generator":
            return f"synthetic source {record.label}"
    return None


def real_use(record: ResultRecord) -> tuple[int, int]:
    """(real labels, real images) the record's student used."""
    if hasattr(record, "real_labels_used"):
        return record.real_labels_used, record.real_images_used
    if record.kind == "data_reduction":
        return record.train_images, record.train_images
    if getattr(record, "ablation", "") == "mixing":
        return record.real_images or 0, record.real_images or 0
    if getattr(record, "ablation", "") == "normalization":
        return 0, record.adabn_images or 0
    return 0, 0


@dataclass(frozen=True)
class Remedy:
    label: str
    top1: Interval
    share: Interval | None  # percent of the gap R − S closed; None without both baselines or without a gap
    real_labels: int
    real_images: int
    seconds: float  # mean over seeds
    records: tuple[ResultRecord, ...]


def gap_baselines(bases: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """`bases` when R is above S in every seed, else none: a share of no gap (R − S ≤ 0) would flip its sign or
    divide by zero, and shares over only the seeds with a gap would hide the seeds without one."""
    return bases if all(r > s for r, s in bases.values()) else {}


def gap_shares(group: list[ResultRecord], bases: dict[int, tuple[float, float]]) -> list[float]:
    """(top-1 − S) / (R − S) in percent for each record whose seed has a gap in `bases` (`gap_baselines`)."""
    return [100 * (r.top1 - bases[r.seed][1]) / (bases[r.seed][0] - bases[r.seed][1]) for r in group if r.seed in bases]


def remedies(records: list[ResultRecord]) -> list[Remedy]:
    """Every remedy in `records`, best share of the gap first (by top-1 where the share is unknown)."""
    groups: dict[str, list[ResultRecord]] = defaultdict(list)
    for record in records:
        label = remedy_label(record)
        if label is not None:
            groups[label].append(record)
    bases = gap_baselines(seed_baselines(records))
    out = []
    for label, group in groups.items():
        shares = gap_shares(group, bases)
        labels, images = real_use(group[0])
        out.append(
            Remedy(
                label,
                interval([r.top1 for r in group]),
                interval(shares) if shares else None,
                labels,
                images,
                statistics.fmean(r.seconds for r in group),
                tuple(group),
            )
        )
    return sorted(out, key=lambda m: (-(m.share.mean if m.share else -1e9), -m.top1.mean))


def class_changes(remedy: Remedy, records: list[ResultRecord], classes: list[str]) -> tuple[list, list]:
    """The classes a remedy fixes and breaks: its mean per-class top-1 minus S's, beyond `CLASS_NOTE_PP`, largest
    first (as (name, pp) pairs)."""
    s = [r for r in side_baselines(records).get("S", []) if r.per_class_top1]
    mine = [r for r in remedy.records if r.per_class_top1]
    if not s or not mine or len(s[0].per_class_top1) != len(classes):
        return [], []

    def mean_per_class(group: list[ResultRecord]) -> list[float | None]:
        columns = zip(*(r.per_class_top1 for r in group), strict=True)
        return [None if any(v is None for v in c) else statistics.fmean(c) for c in columns]

    deltas = [
        (name, a - b)
        for name, a, b in zip(classes, mean_per_class(mine), mean_per_class(s), strict=True)
        if a is not None and b is not None
    ]
    fixed = sorted((d for d in deltas if d[1] > CLASS_NOTE_PP), key=lambda d: -d[1])
    broken = sorted((d for d in deltas if d[1] < -CLASS_NOTE_PP), key=lambda d: d[1])
    return fixed, broken


def _classes(records: list[ResultRecord]) -> list[str]:
    return next((list(r.classes) for r in records if getattr(r, "classes", None)), [])


def _changes_text(changes: list[tuple[str, float]]) -> str:
    return ", ".join(f"{md_text(name)} ({delta:+.1f})" for name, delta in changes[:3]) or "–"


def remedy_table(found: list[Remedy], records: list[ResultRecord]) -> list[str]:
    """One row per remedy; the share column only where some remedy has a share (there is a gap to close)."""
    classes = _classes(records)
    shares = any(m.share for m in found)
    share_head = "share of the gap closed (%) [95 % CI] | " if shares else ""
    lines = [
        f"| remedy | {share_head}top-1 (%) | real labels | real images | seconds | fixes (pp vs S) | "
        "breaks (pp vs S) |",
        "|---|" + "---|" * (7 if shares else 6),
    ]
    for remedy in found:
        fixed, broken = class_changes(remedy, records, classes)
        share = f"{remedy.share or '–'} | " if shares else ""
        lines.append(
            f"| {md_text(remedy.label)} | {share}{remedy.top1.mean:.2f} | {remedy.real_labels} | "
            f"{remedy.real_images} | {remedy.seconds:.0f} | {_changes_text(fixed)} | {_changes_text(broken)} |"
        )
    return lines


def no_gap_text(bases: dict[int, tuple[float, float]]) -> str | None:
    """Why no share of the gap is computed when S is as good as or better than R in some seed (None: R is above S
    in every seed)."""
    gaps = {seed: r - s + 0.0 for seed, (r, s) in bases.items()}  # + 0.0: a zero gap reads 0.00, never -0.00
    without = sorted(seed for seed, gap in gaps.items() if gap <= 0)
    if not without:
        return None
    mean = statistics.fmean(gaps.values()) + 0.0
    if len(without) == len(gaps):
        where = f"here (gap {mean:.2f} pp over {len(gaps)} seed(s)): there is no gap to close"
    else:
        there = ", ".join(f"{gaps[seed]:.2f}" for seed in without)
        where = (
            f"in seed(s) {', '.join(map(str, without))} (gap {there} pp there, {mean:.2f} pp over all "
            f"{len(gaps)}): the gap is not there in every seed"
        )
    return (
        f"S is as good as or better than R {where}, so no share of the gap is computed; remedies are compared by top-1."
    )


def remedy_reading(found: list[Remedy], records: list[ResultRecord]) -> str:
    """Which remedy closes most of the gap without a real label, and which buys most per thousand real labels."""
    bases = seed_baselines(records)
    if not bases or not found:
        return "Without R and S baselines of the same seeds no share of the gap can be computed."
    r = statistics.fmean(v[0] for v in bases.values())
    s = statistics.fmean(v[1] for v in bases.values())
    no_gap = no_gap_text(bases)
    gap = f"a gap of {r - s:.2f} pp over {len(bases)} seed(s)."
    parts = [f"R {r:.2f} %, S {s:.2f} %: {no_gap or gap}"]
    free = [m for m in found if m.real_labels == 0 and m.share]
    if free:
        best = free[0]
        overlap = [m for m in free[1:] if m.share.high >= best.share.low]
        parts.append(
            f"The best remedy that uses no real label is {md_text(best.label)}: it closes {best.share} % of the gap "
            f"(top-1 {best.top1.mean:.2f} %, {best.real_images} real images seen)."
        )
        if overlap and best.share.n > 1:
            parts.append(
                f"Its interval overlaps that of {len(overlap)} other label-free remedy(ies) (next: "
                f"{md_text(overlap[0].label)}, {overlap[0].share} %), so their order is not settled."
            )
    paid = [m for m in found if m.real_labels > 0]
    if paid:
        best = max(paid, key=lambda m: (m.top1.mean - s) / (m.real_labels / 1000))
        gain = (best.top1.mean - s) / (best.real_labels / 1000)
        parts.append(
            f"Per thousand real labels, {md_text(best.label)} buys most: {gain:+.2f} pp over S per 1,000 labels "
            f"({best.real_labels} labels, top-1 {best.top1.mean:.2f} %)."
        )
    controls = {m.label.split(", ", 1)[1]: m for m in found if m.label.startswith("random subset, ")}
    for m in found:
        control = controls.get(m.label.split(", ", 1)[1]) if m.label.startswith("curation ") else None
        if control:
            parts.append(control_text(m, control))
    parts.append(
        f"Per-class changes are named only beyond {CLASS_NOTE_PP:g} pp of the mean over seeds; with a few hundred "
        "test images per class one class's top-1 moves by about 2 pp from seed to seed."
    )
    return " ".join(parts)


def control_text(curated: Remedy, control: Remedy) -> str:
    """How a curated subset compares with its random control: by share of the gap where both have one, else (no gap
    to close) by top-1."""
    both = curated.share is not None and control.share is not None
    mine, theirs = (curated.share, control.share) if both else (curated.top1, control.top1)
    values = f"{mine} vs {theirs} %" if both else f"top-1 {mine} vs {theirs} %"
    if min(mine.n, theirs.n) < 2:  # one seed has no interval: a difference of a point or two may be noise
        side = "above" if mine.mean > theirs.mean else "below" if mine.mean < theirs.mean else "level with"
        return f"{md_text(curated.label)} is {side} its random control ({values}; one seed: no interval to tell)."
    if mine.low > theirs.high:
        verb = "beats"
    elif mine.high < theirs.low:
        verb = "falls below"
    else:
        verb = "does not differ clearly from"
    return f"{md_text(curated.label)} {verb} its random control ({values})."


def plot_remedies(found: list[Remedy], path: Path) -> Path:
    """Horizontal bars: each remedy's share of the gap with its 95 % interval, coloured by whether it used real
    labels."""
    shown = [m for m in found if m.share]
    fig = Figure(figsize=(8.5, 1.2 + 0.38 * len(shown)), layout="constrained")
    ax = fig.add_subplot()
    ys = list(range(len(shown)))[::-1]
    ax.barh(
        ys,
        [m.share.mean for m in shown],
        xerr=[[m.share.mean - m.share.low for m in shown], [m.share.high - m.share.mean for m in shown]],
        color=[WITH_LABELS if m.real_labels else NO_LABELS for m in shown],
        capsize=3,
    )
    ax.set_yticks(ys, [figure_text(m.label) for m in shown], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.axvline(100, color="black", linewidth=0.8, linestyle="--")
    seeds = max((m.share.n for m in shown), default=0)
    ax.set_xlabel(f"share of the gap R − S closed (%)\nbars: mean; whiskers: 95 % interval over {seeds} seed(s)")
    ax.set_title("Remedies: 0 % = S, 100 % = R")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=NO_LABELS, label="no real label"), Patch(color=WITH_LABELS, label="real labels")],
        loc="lower right",
        fontsize=8,
    )
    ax.grid(True, axis="x", alpha=0.35)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def distilled_source_lines(records: list[ResultRecord]) -> list[str]:
    """Synthetic→real students from the distilled student beside those from S, per N (the gap's place)."""
    distilled = [r for r in records if r.kind == "distillation" and getattr(r, "student", "") == "transfer"]
    if not distilled:
        return []
    plain = [r for r in records if r.kind == "layer_transfer" and r.source_side == "synthetic" and r.frozen]
    bases = gap_baselines(seed_baselines(records))

    def cell(group: list[ResultRecord]) -> str:
        if not group:
            return "–"
        shares = gap_shares(group, bases)
        top1 = statistics.fmean(r.top1 for r in group)
        return f"{top1:.2f} ({interval(shares)} % of the gap)" if shares else f"{top1:.2f}"

    teacher = distilled[0].source.removeprefix("distilled:").rsplit("-s", 1)[0]
    lines = [
        "Layers 1..N frozen from a synthetic-trained student, the rest trained on the real images: from S, and from "
        f"the distilled student ({md_text(teacher)}). Where the "
        "two columns part is where distillation changed the layers.",
        "",
        "| N | from S: top-1 (%) | from the distilled student: top-1 (%) |",
        "|---|---|---|",
    ]
    for n in sorted({r.n_transferred for r in distilled}):
        lines.append(
            f"| {n} | {cell([r for r in plain if r.n_transferred == n])} | "
            f"{cell([r for r in distilled if r.n_transferred == n])} |"
        )
    return lines


@section("remedies", kinds=("distillation", "curation"), order=60)
def remedies_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The remedies table and figure, the computed reading, and the distilled student as a layer source. Only
    when the folder holds a distillation or curation run (the ablation section covers a folder of ablations)."""
    if not any(r.kind in ("distillation", "curation") for r in records):
        return []
    found = remedies(records)
    lines = [scope.heading("Remedies: what closes the gap, at what price"), ""]
    if found:
        lines += [remedy_reading(found, records), ""]
        if any(m.share for m in found):  # no figure of shares where no share is computed (no gap to close)
            plot_remedies(found, scope.figure_path("remedies"))
            lines += [f"![Share of the gap each remedy closes]({scope.figure('remedies')})", ""]
        lines += [*remedy_table(found, records), ""]
    transfer = distilled_source_lines(records)
    if transfer:
        lines += ["### The distilled student as a layer source", "", *transfer, ""]
    return lines
