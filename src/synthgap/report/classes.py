"""Per-class results of ONE model family: which classes lose most when trained on synthetic data, which recover most
with real-trained late layers, and the confusion matrices of R and S.

Pure functions over `ResultRecord`s; nothing here reads files or draws. Records carry `per_class_top1` (top-1 in %
of each class of the real test set, in the order of the baselines' `classes`; None for a class without test images)
and baselines a `confusion` matrix (row = true class, column = predicted). Records written before these fields
existed have none: every function here then returns None or an empty list, and the report leaves the section out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from synthgap.experiments.kinds.layer_transfer import TransferRecord
from synthgap.experiments.results import BaselineRecord, ResultRecord
from synthgap.report.layers import S2R, main_variant_records, recovery_ns
from synthgap.report.tables import layer_count, side_baselines
from synthgap.report.text import md_text

TABLE_ENDS = 10  # with more than 2 × TABLE_ENDS classes the table shows only the largest and smallest gaps
MIN_RECOVERY_GAP = 1.0  # pp: a class's recovered share is shown only where its gap R − S is at least this
NOISE_ERRORS = 2.0  # a class's gap within this many binomial standard errors of its test images is noise


@dataclass(frozen=True)
class ClassGap:
    """One class: mean per-class top-1 (%) of R, S and (when a sweep has one) the synthetic→real student."""

    name: str
    r: float
    s: float
    student: float | None = None
    test_images: int | None = None  # the class's real test images (a row of a baseline's confusion matrix)

    @property
    def gap(self) -> float:
        return self.r - self.s

    @property
    def noise(self) -> float | None:
        """`NOISE_ERRORS` binomial standard errors (pp) of the gap R − S on the class's test images: how far apart
        R and S can land by the luck of which test images they get right. None without the test image count."""
        if not self.test_images:
            return None
        r, s = self.r / 100.0, self.s / 100.0
        return NOISE_ERRORS * 100.0 * math.sqrt((r * (1 - r) + s * (1 - s)) / self.test_images)

    @property
    def beyond_noise(self) -> bool:
        """Whether |gap| is at least `noise` (and `MIN_RECOVERY_GAP`, which is all there is without a count)."""
        return abs(self.gap) >= max(self.noise or 0.0, MIN_RECOVERY_GAP)

    @property
    def recovered(self) -> float | None:
        """Share of this class's gap the student recovers, (student − S) / (R − S) in %; None unless R is ahead
        by more than noise (the ratio of two small noisy numbers means nothing, and 162 % of a noisy 2 pp gap
        would read as a finding)."""
        if self.student is None or self.gap <= 0 or not self.beyond_noise:
            return None
        return 100.0 * (self.student - self.s) / self.gap


@dataclass(frozen=True)
class PerClassGaps:
    """Every class with per-class results on both sides, largest gap R − S first."""

    classes: list[ClassGap]
    seeds_r: int
    seeds_s: int
    student_n: int | None = None  # N of the synthetic→real student whose per-class top-1 is in `ClassGap.student`
    student_seeds: int = 0


def class_names(records: Iterable[ResultRecord]) -> list[str] | None:
    """Class names in label order, from the first baseline that recorded them."""
    for record in records:
        if isinstance(record, BaselineRecord) and record.classes:
            return list(record.classes)
    return None


def class_count(records: Iterable[ResultRecord]) -> int | None:
    """The number of classes C, from the baselines' `classes` or else the length of any `per_class_top1`."""
    records = list(records)
    names = class_names(records)
    if names:
        return len(names)
    lengths = [len(r.per_class_top1) for r in records if r.per_class_top1]
    return max(lengths) if lengths else None


def per_class_means(records: Iterable[ResultRecord], num_classes: int) -> list[float | None]:
    """Mean over `records` of each class's top-1 (None for a class no record measured); records whose
    `per_class_top1` has another length are ignored."""
    columns: list[list[float]] = [[] for _ in range(num_classes)]
    for record in records:
        if record.per_class_top1 and len(record.per_class_top1) == num_classes:
            for column, value in zip(columns, record.per_class_top1, strict=True):
                if value is not None:
                    column.append(value)
    return [statistics.fmean(column) if column else None for column in columns]


def _with_per_class(records: Iterable[ResultRecord], num_classes: int) -> list[ResultRecord]:
    return [r for r in records if r.per_class_top1 and len(r.per_class_top1) == num_classes]


def student_records(records: list[ResultRecord]) -> tuple[int, list[TransferRecord]] | None:
    """The synthetic→real students (main variant) the per-class recovery is read from, and their N: of the N at
    which the reading reports recovery (`recovery_ns`, e.g. 8, 12, 16, 17 of 18) the one with the largest mean
    top-1, among those whose records carry per-class results. None without such students."""
    num_classes = class_count(records)
    if num_classes is None:
        return None
    students = _with_per_class(main_variant_records(records, S2R), num_classes)
    if not students:
        return None
    candidates = set(recovery_ns(layer_count(students[0])))
    by_n: dict[int, list[TransferRecord]] = {}
    for record in students:
        if record.n_transferred in candidates:
            by_n.setdefault(record.n_transferred, []).append(record)
    if not by_n:
        return None
    best = max(sorted(by_n), key=lambda n: statistics.fmean(r.top1 for r in by_n[n]))
    return best, by_n[best]


def per_class_gaps(records: list[ResultRecord]) -> PerClassGaps | None:
    """Per class: R, S (means over seeds) and the synthetic→real student at `student_records`' N, sorted by the gap
    R − S, largest first. None unless both R and S carry per-class results."""
    num_classes = class_count(records)
    sided = side_baselines(records)
    if num_classes is None or "R" not in sided or "S" not in sided:
        return None
    real, synthetic = _with_per_class(sided["R"], num_classes), _with_per_class(sided["S"], num_classes)
    if not real or not synthetic:
        return None
    names = class_names(records) or [f"class {i}" for i in range(num_classes)]
    r_means, s_means = per_class_means(real, num_classes), per_class_means(synthetic, num_classes)
    student = student_records(records)
    student_means = per_class_means(student[1], num_classes) if student else [None] * num_classes
    counts = test_counts(records, num_classes)
    classes = [
        ClassGap(name, r, s, st, n)
        for name, r, s, st, n in zip(names, r_means, s_means, student_means, counts, strict=True)
        if r is not None and s is not None
    ]
    classes.sort(key=lambda c: -c.gap)
    return PerClassGaps(
        classes,
        seeds_r=len(real),
        seeds_s=len(synthetic),
        student_n=student[0] if student else None,
        student_seeds=len(student[1]) if student else 0,
    )


def test_counts(records: Iterable[ResultRecord], num_classes: int) -> list[int | None]:
    """Each class's real test images: the row sums of the first baseline confusion matrix of C × C (all runs are
    tested on the same real test set); None for every class when no baseline carries one."""
    for record in records:
        matrix = getattr(record, "confusion", None)
        if isinstance(record, BaselineRecord) and matrix and len(matrix) == num_classes:
            return [sum(row) for row in matrix]
    return [None] * num_classes


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def per_class_table_lines(gaps: PerClassGaps, ends: int = TABLE_ENDS) -> list[str]:
    """Markdown: one row per class, largest gap first; with more than 2 × `ends` classes only the `ends` largest
    and `ends` smallest gaps, with a row saying how many are left out."""
    student = gaps.student_n is not None
    head = "| class | R top-1 (%) | S top-1 (%) | gap R − S (pp) |"
    rule = "|---|---|---|---|"
    if student:
        head += f" synthetic→real N = {gaps.student_n} (%) | gap recovered (%) |"
        rule += "---|---|"
    rows = gaps.classes
    hidden = 0
    if len(rows) > 2 * ends:
        hidden = len(rows) - 2 * ends
        rows = rows[:ends] + rows[-ends:]
    lines = [head, rule]
    for i, c in enumerate(rows):
        if hidden and i == ends:
            lines.append(f"| … {hidden} classes with gaps in between … |" + " |" * (5 if student else 3))
        line = f"| {md_text(c.name)} | {c.r:.2f} | {c.s:.2f} | {c.gap:+.2f} |"
        if student:
            line += f" {_cell(c.student)} | {_cell(c.recovered, 0)} |"
        lines.append(line)
    return lines


def _names(classes: list[ClassGap], value) -> str:
    return ", ".join(f"{md_text(c.name)} ({value(c)})" for c in classes)


def _seeds(count: int) -> str:
    return f"{count} seed{'' if count == 1 else 's'}"


def _test_images(classes: list[ClassGap]) -> str:
    """ "50 test images per class", "40–60 test images per class", or that the records do not say."""
    if not classes or any(not c.test_images for c in classes):
        return "test images per class not recorded"
    counts = sorted({c.test_images for c in classes})
    span = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]}"
    return f"{span} test images per class"


def _noise_rule(classes: list[ClassGap]) -> str:
    if all(c.noise is not None for c in classes):
        return (
            f"A gap smaller than {NOISE_ERRORS:g} binomial standard errors of its class's test images (or than "
            f"{MIN_RECOVERY_GAP:g} pp) is marked as within noise."
        )
    return (
        "Without per-class test image counts no gap can be tested against binomial noise; gaps under "
        f"{MIN_RECOVERY_GAP:g} pp are marked as within noise."
    )


def gap_sentences(classes: list[ClassGap], limit: int = 3) -> list[str]:
    """Which classes R beats S on most (and least), and which S beats R on, each worded by the sign of its gap
    R − S (a negative gap is a class S does better on, never a "loss"); no class is in two lists."""
    behind = [c for c in classes if c.gap > 0]  # largest first, as `classes` is sorted
    ahead = sorted((c for c in classes if c.gap < 0), key=lambda c: c.gap)
    out = []
    if behind:
        most, rest = behind[:limit], behind[limit:]
        least = rest[::-1][:limit]
        text = f"R beats S {'most ' if least else ''}on {_names(most, _pp)}"
        out.append(text + (f", and least on {_names(least, _pp)}." if least else "."))
    if ahead:
        many = len(ahead) > limit
        out.append(f"S beats R (a negative gap R − S) {'most ' if many else ''}on {_names(ahead[:limit], _pp)}.")
    elif behind:
        out.append("S beats R on no class.")
    return out


def per_class_reading(gaps: PerClassGaps, limit: int = 3) -> str:
    """A few sentences: the seeds and test images behind the numbers, where R beats S most and least and where S
    beats R (by the sign of the gap, a gap within binomial noise marked so), how many classes S does at least as
    well on, and (with a sweep) which classes real-trained late layers help most and least, naming only classes
    whose gap is beyond noise. Lists of "most" and "least" never share a class."""
    classes = gaps.classes
    if gaps.seeds_r == gaps.seeds_s:
        seeds = f"means over {_seeds(gaps.seeds_r)} each of R and S" if gaps.seeds_r > 1 else "1 seed each of R and S"
    else:
        seeds = f"means over {gaps.seeds_r} / {gaps.seeds_s} seeds of R / S"
    out = [
        f"Per-class top-1 on the real test set ({seeds}; {_test_images(classes)}), {len(classes)} classes sorted "
        "by the gap R − S, largest first.",
        _noise_rule(classes),
        *gap_sentences(classes, limit),
    ]
    not_behind = [c for c in classes if c.gap <= 0]
    if not_behind:
        out.append(f"S is at least as good as R on {len(not_behind)} of {len(classes)} classes.")
    if gaps.student_n is not None:
        out += _recovery_sentences(gaps, limit)
    return " ".join(out)


def _recovery_sentences(gaps: PerClassGaps, limit: int) -> list[str]:
    out = [
        f"Recovery per class is read from the synthetic→real student at N = {gaps.student_n} (layers "
        f"1..{gaps.student_n} from the synthetic-trained model, the rest trained on real data, "
        f"{_seeds(gaps.student_seeds)}), the N with the highest top-1 among those the layer-wise reading reports; "
        "recovered = (student − S) / (R − S) per class, shown only for classes where R beats S by more than noise."
    ]
    measured = sorted((c for c in gaps.classes if c.recovered is not None), key=lambda c: -c.recovered)
    ends = min(limit, len(measured) // 2)
    if ends:
        out.append(
            f"Real late layers recover most for {_names(measured[:ends], _share)} and least for "
            f"{_names(measured[::-1][:ends], _share)}."
        )
    elif measured:
        only = measured[0]
        out.append(f"Only {md_text(only.name)}'s gap is beyond noise: real late layers recover {_share(only)} of it.")
    else:
        out.append("No class's gap R − S is beyond noise, so no per-class share is named.")
    return out


def _pp(c: ClassGap) -> str:
    return f"{c.gap:+.2f} pp" + ("" if c.beyond_noise else ", within noise")


def _share(c: ClassGap) -> str:
    return f"{c.recovered:.0f}%"


@dataclass(frozen=True)
class Confusions:
    """Confusion matrices (counts, row = true class) of the R and S baselines of one seed (each when present)."""

    seed: int
    matrices: dict[str, list[list[int]]]  # "R" / "S" -> C×C
    classes: list[str]


def first_seed_confusions(records: list[ResultRecord]) -> Confusions | None:
    """The R and S confusion matrices of the first (smallest) seed both recorded one, else of the first seed either
    did. None when no baseline on a side carries a confusion matrix."""
    sided = side_baselines(records)
    by_side: dict[str, dict[int, list[list[int]]]] = {}
    for name, group in sided.items():
        matrices = {r.seed: r.confusion for r in group if isinstance(r, BaselineRecord) and r.confusion}
        if matrices:
            by_side[name] = matrices
    if not by_side:
        return None
    both = sorted(set.intersection(*(set(m) for m in by_side.values())))
    seed = both[0] if both else min(seed for m in by_side.values() for seed in m)
    matrices = {name: m[seed] for name, m in by_side.items() if seed in m}
    size = len(next(iter(matrices.values())))
    names = class_names(records)
    if not names or len(names) != size:
        names = [f"class {i}" for i in range(size)]
    return Confusions(seed, matrices, names)
