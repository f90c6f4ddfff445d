"""Ablation tables and their reading: which cheap fix narrows the gap R − S, and by how much (from results only).

Every table reads the typed fields of its ablation's records (`NormalizationRecord.normalization` / `adabn`,
`AugmentationRecord.augmentation`, `TextureRecord.student`, `MixingRecord.mixing` / `synthetic_share` /
`added_synthetic`, ...) and the side each student trained on from `side`; the `variant` label is never read back.
Records that lack the field a table needs (files written by old versions: no `side`, no `normalization`, ...) are left
out of that table and are listed only with every run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import NamedTuple, TypeVar

from synthgap.experiments.kinds.augmentation import AugmentationRecord
from synthgap.experiments.kinds.generator import GeneratorRecord
from synthgap.experiments.kinds.mixing import MixingRecord
from synthgap.experiments.kinds.normalization import NormalizationRecord
from synthgap.experiments.kinds.texture_shape import TextureRecord
from synthgap.experiments.results import AblationRecord, ResultRecord
from synthgap.report.figures import plot_grouped_bars, plot_mixing
from synthgap.report.layers import layer_baselines
from synthgap.report.sections import Scope, section
from synthgap.report.tables import Summary, summarize
from synthgap.report.text import md_text

NORMALIZATION_LABELS = {
    "imagenet": "ImageNet constants",
    "synthetic": "synthetic-data statistics",
    "real": "real-data statistics",
    "per_dataset": "each data set's own statistics",
}
CUE_LABELS = {"grayscale_blur": "grayscale + blur", "edges": "edge map", "patch_shuffle": "patch shuffle"}
TEXTURE_DEFINITION = (
    "**Texture-reliance score.** Each student is tested on three variants of the real test images. Shape kept, "
    "texture destroyed: *grayscale + blur* (ITU-R 601 luma, Gaussian blur of sigma {sigma:g} px) and *edge map* "
    "(inverted Sobel gradient magnitude of the luma, scaled per image). Texture kept, shape destroyed: *patch "
    "shuffle* (the image cut into a {grid}×{grid} grid of patches placed in a random order, fixed across "
    "students). With A_shape the mean top-1 over the two shape-keeping variants, A_texture the top-1 on the "
    "shuffled images and c = 100 / classes the chance level, the score is max(A_texture − c, 0) / "
    "(max(A_texture − c, 0) + max(A_shape − c, 0)): 0 means the student recognises only shape-keeping images, "
    "1 only texture-keeping ones; it is undefined when neither beats chance."
)

RecordT = TypeVar("RecordT", bound=AblationRecord)


def ablation_records(records: Iterable[ResultRecord], cls: type[RecordT]) -> list[RecordT]:
    """The records of one ablation, by their typed class (e.g. `NormalizationRecord`)."""
    return [r for r in records if isinstance(r, cls)]


def _top1(record: ResultRecord) -> float | None:
    return record.top1


def _summaries(
    records: Iterable[RecordT],
    key: Callable[[RecordT], tuple],
    value: Callable[[RecordT], float | None] = _top1,
) -> dict[tuple, Summary]:
    """Mean ± std over seeds of `value` per `key`, in first-seen order; values that are None are left out."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for record in records:
        v = value(record)
        groups[key(record)]  # keep the key's place even when its value is missing
        if v is not None:
            groups[key(record)].append(v)
    return {k: summarize(v) for k, v in groups.items() if v}


def _pp(value: float) -> str:
    return f"{value:+.2f}"


def _gap_to(reference: Summary | None, summary: Summary) -> str:
    return f"{reference.mean - summary.mean:.2f}" if reference else "–"


# --- normalization -------------------------------------------------------------------------------------------------


def normalization_label(normalization: str, adabn: bool) -> str:
    return NORMALIZATION_LABELS.get(normalization, normalization) + (" + AdaBN" if adabn else "")


def normalization_table(records: list[ResultRecord], baselines: dict[str, Summary]) -> tuple[list[str], dict]:
    """The table and its rows {(side, normalization, adabn): Summary}."""
    chosen = [r for r in ablation_records(records, NormalizationRecord) if r.side and r.normalization]
    rows = _summaries(chosen, lambda r: (r.side, r.normalization, r.adabn))
    if not rows:
        return [], {}
    lines = [
        "| student trained on | normalization | AdaBN on real images | top-1 (%) | vs ImageNet constants (pp) | "
        "gap to R (pp) |",
        "|---|---|---|---|---|---|",
    ]
    r = baselines.get("R")
    for (student, normalization, adabn), summary in rows.items():
        reference = rows.get((student, "imagenet", False))
        is_reference = normalization == "imagenet" and not adabn
        delta = _pp(summary.mean - reference.mean) if reference and not is_reference else "–"
        label = NORMALIZATION_LABELS.get(normalization, normalization)
        lines.append(
            f"| {md_text(student)} | {md_text(label)} | {'yes' if adabn else 'no'} | {summary} | {delta} | "
            f"{_gap_to(r, summary)} |"
        )
    return lines, rows


# --- augmentation --------------------------------------------------------------------------------------------------


def augmentation_table(records: list[ResultRecord]) -> tuple[list[str], dict[str, dict[str, Summary]]]:
    """The table and {preset: {side: Summary}}."""
    chosen = [r for r in ablation_records(records, AugmentationRecord) if r.side and r.augmentation]
    rows = _summaries(chosen, lambda r: (r.augmentation, r.side))
    presets: dict[str, dict[str, Summary]] = defaultdict(dict)
    for (preset, student), summary in rows.items():
        presets[preset][student] = summary
    if not presets:
        return [], {}
    standard = presets.get("standard", {})
    standard_gap = standard["real"].mean - standard["synthetic"].mean if len(standard) == 2 else None
    lines = [
        "| augmentation | R: trained on real (%) | S: trained on synthetic (%) | gap R − S (pp) | "
        "gap vs standard (pp) |",
        "|---|---|---|---|---|",
    ]
    for preset, by_side in presets.items():
        real, synthetic = by_side.get("real"), by_side.get("synthetic")
        gap = real.mean - synthetic.mean if real and synthetic else None
        compared = gap is not None and standard_gap is not None and preset != "standard"
        change = _pp(gap - standard_gap) if compared else "–"
        gap_text = "–" if gap is None else f"{gap:.2f}"
        lines.append(f"| {md_text(preset)} | {real or '–'} | {synthetic or '–'} | {gap_text} | {change} |")
    return lines, dict(presets)


# --- texture vs shape ----------------------------------------------------------------------------------------------


def _student_label(student: str, n_transferred: int) -> str:
    if student in ("real", "synthetic"):
        return f"{'R' if student == 'real' else 'S'}: trained on {student}"
    return f"{student.replace('_to_', '→')}, layers 1..{n_transferred} frozen"


def _texture_key(record: TextureRecord) -> tuple:
    """A row: the student and the cue settings it was tested with (seeds are averaged, settings never)."""
    return record.student, record.n_transferred, record.cue_sigma, record.cue_grid


def _reliance_text(reliance: Summary | None) -> str:
    if reliance is None:
        return "–"
    return f"{reliance.mean:.3f} ± {reliance.std:.3f}" if reliance.n > 1 else f"{reliance.mean:.3f}"


def texture_table(records: list[ResultRecord]) -> tuple[list[str], dict[str, dict[str, Summary]]]:
    """One row per student and cue setting (blur sigma, patch grid); seeds are averaged, settings never.

    Returns the table and {row label: {"clean" | cue | "texture_reliance": Summary}}."""
    chosen = [r for r in ablation_records(records, TextureRecord) if r.student]
    if not chosen:
        return [], {}
    settings = list(dict.fromkeys((r.cue_sigma, r.cue_grid) for r in chosen))
    columns: dict[str, dict[tuple, Summary]] = {"clean": _summaries(chosen, _texture_key)}
    for cue in CUE_LABELS:
        columns[cue] = _summaries(chosen, _texture_key, lambda r, cue=cue: r.cue_top1.get(cue))
    columns["texture_reliance"] = _summaries(chosen, _texture_key, lambda r: r.texture_reliance)
    students: dict[str, dict[str, Summary]] = {}
    for key in columns["clean"]:
        student, n, sigma, grid = key
        label = _student_label(student, n) + (f" (sigma {sigma:g}, grid {grid})" if len(settings) > 1 else "")
        students[label] = {name: column[key] for name, column in columns.items() if key in column}
    cue_headers = " | ".join(f"{label} (%)" for label in CUE_LABELS.values())
    lines = [
        f"| student | clean (%) | {cue_headers} | texture reliance |",
        "|---|---|" + "---|" * len(CUE_LABELS) + "---|",
    ]
    for label, values in students.items():
        cells = [str(values[c]) if c in values else "–" for c in ["clean", *CUE_LABELS]]
        reliance = _reliance_text(values.get("texture_reliance"))
        lines.append(f"| {md_text(label)} | " + " | ".join(cells) + f" | {reliance} |")
    sigma, grid = settings[0]
    definition = TEXTURE_DEFINITION.format(sigma=sigma, grid=grid)
    if len(settings) > 1:
        definition += " Rows name their own sigma and grid where they differ from these."
    return [*lines, "", definition], students


# --- generator and mixing ------------------------------------------------------------------------------------------


def generator_table(records: list[ResultRecord], baselines: dict[str, Summary]) -> tuple[list[str], dict]:
    """The table and its rows {(label, data): Summary}."""
    # `variant` is only a display label; records of old versions carry the source's name there and not in `label`
    rows = _summaries(ablation_records(records, GeneratorRecord), lambda r: (r.label or r.variant, r.target))
    if not rows:
        return [], {}
    r = baselines.get("R")
    lines = ["| synthetic source | data | top-1 (%) on real test | gap to R (pp) |", "|---|---|---|---|"]
    for (label, ref), summary in rows.items():
        lines.append(f"| {md_text(label)} | {md_text(ref)} | {summary} | {_gap_to(r, summary)} |")
    return lines, rows


class MixingArm(NamedTuple):
    """One way of mixing real and synthetic images (a row of the mixing table)."""

    mixing: str  # share | added | pretrain_finetune
    synthetic_share: float | None = None
    added_synthetic: float | None = None

    @property
    def label(self) -> str:
        if self.mixing == "share" and self.synthetic_share is not None:
            return f"{self.synthetic_share * 100:g} % of the images synthetic (same size as R's set)"
        if self.mixing == "added" and self.added_synthetic is not None:
            return f"all real images + {self.added_synthetic:g}× as many synthetic"
        if self.mixing == "pretrain_finetune":
            return "synthetic pretraining, then all layers fine-tuned on real"
        return self.mixing


def _mixing_arm(record: MixingRecord) -> MixingArm:
    return MixingArm(record.mixing, record.synthetic_share, record.added_synthetic)


def mixing_table(records: list[ResultRecord], baselines: dict[str, Summary]) -> tuple[list[str], dict]:
    """The table and its rows {MixingArm: Summary}."""
    chosen = [r for r in ablation_records(records, MixingRecord) if r.mixing]
    rows = _summaries(chosen, lambda r: (_mixing_arm(r),))
    if not rows:
        return [], {}
    sizes = {_mixing_arm(r): (r.real_images, r.synthetic_images) for r in chosen}
    r = baselines.get("R")
    lines = ["| training | real images | synthetic images | top-1 (%) | vs R (pp) |", "|---|---|---|---|---|"]
    for (arm,), summary in rows.items():
        real_images, synthetic_images = sizes[arm]
        if arm.mixing == "pretrain_finetune":  # the synthetic images trained the model before, not with, the real ones
            synthetic_images = "S's training set, before"
        versus = _pp(summary.mean - r.mean) if r else "–"
        lines.append(f"| {md_text(arm.label)} | {real_images} | {synthetic_images} | {summary} | {versus} |")
    return lines, {arm: summary for (arm,), summary in rows.items()}


# --- the reading ---------------------------------------------------------------------------------------------------


def _normalization_sentence(
    records: list[ResultRecord], baselines: dict[str, Summary], best: list[tuple[float, str]]
) -> str | None:
    """How the synthetic student's normalization moves it against ImageNet constants; adds candidates to `best`."""
    _, rows = normalization_table(records, baselines)
    synthetic_rows = {(choice, adabn): m for (side, choice, adabn), m in rows.items() if side == "synthetic"}
    if ("imagenet", False) not in synthetic_rows or len(synthetic_rows) < 2:
        return None
    reference = synthetic_rows[("imagenet", False)].mean
    changes = [
        f"{md_text(normalization_label(*setting))} {_pp(m.mean - reference)} pp"
        for setting, m in synthetic_rows.items()
        if setting != ("imagenet", False)
    ]
    top_setting, top = max(synthetic_rows.items(), key=lambda item: item[1].mean)
    # AdaBN sees unlabelled real images, so it does not count as training on synthetic images only
    best += [(m.mean, f"normalization: {normalization_label(*s)}") for s, m in synthetic_rows.items() if not s[1]]
    return (
        f"Normalization: against the synthetic student with ImageNet constants ({reference:.2f} %), "
        + "; ".join(changes)
        + f"; the best setting ({md_text(normalization_label(*top_setting))}) leaves a gap to R of "
        f"{baselines['R'].mean - top.mean:.2f} pp."
    )


def _augmentation_sentence(records: list[ResultRecord], best: list[tuple[float, str]]) -> str | None:
    _, presets = augmentation_table(records)
    gaps = {p: v["real"].mean - v["synthetic"].mean for p, v in presets.items() if len(v) == 2}
    best += [(v["synthetic"].mean, f"augmentation: {p}") for p, v in presets.items() if "synthetic" in v]
    if len(gaps) > 1:
        narrowest, widest = min(gaps, key=gaps.get), max(gaps, key=gaps.get)
        shown = "standard" in gaps and "standard" not in (narrowest, widest)
        standard = f" (standard crop + flip: {gaps['standard']:.2f} pp)" if shown else ""
        return (
            f"Augmentation: the gap R − S ranges from {gaps[narrowest]:.2f} pp ({md_text(narrowest)}) to "
            f"{gaps[widest]:.2f} pp ({md_text(widest)}){standard}, both students trained with each preset."
        )
    if gaps:
        ((preset, value),) = gaps.items()
        return f"Augmentation: with {md_text(preset)}, the gap R − S is {value:.2f} pp."
    return None


def _closing_sentence(best: list[tuple[float, str]], r: Summary, s: Summary) -> str:
    top, what = max(best)
    what = md_text(what)
    if top >= r.mean:
        return f"One setting that trains on synthetic images only reaches R: {what}, {top:.2f} %."
    if top <= s.mean:
        return "No setting that trains on synthetic images only improves on S."
    recovered = 100.0 * (top - s.mean) / (r.mean - s.mean)
    return (
        f"None of the settings that train on synthetic images only closes the gap: the best ({what}, {top:.2f} %) "
        f"recovers {recovered:.0f} % of it."
    )


def ablation_reading(records: list[ResultRecord]) -> str:
    """A plain-language paragraph, computed from the numbers: how each ablation moves the gap R − S."""
    baselines = layer_baselines(records)
    r, s = baselines.get("R"), baselines.get("S")
    if not r:
        return "The real-data baseline R is missing, so no ablation can be read against it."
    sentences: list[str | None] = []  # None: an ablation with nothing to say
    if s:
        sentences.append(
            f"The baselines give R = {r.mean:.2f} % and S = {s.mean:.2f} %, a gap R − S of {r.mean - s.mean:.2f} pp."
        )
    else:
        sentences.append(f"The real-data baseline gives R = {r.mean:.2f} % (no synthetic baseline S was run).")
    best: list[tuple[float, str]] = []  # (top-1 of a student that saw synthetic images only, what it was)
    sentences.append(_normalization_sentence(records, baselines, best))
    sentences.append(_augmentation_sentence(records, best))

    _, students = texture_table(records)
    reliance = {k: v["texture_reliance"].mean for k, v in students.items() if "texture_reliance" in v}
    if reliance:
        listed = ", ".join(f"{md_text(k)} {v:.3f}" for k, v in reliance.items())
        sentences.append(f"Texture reliance: {listed} (0 = shape only, 1 = texture only).")

    _, generators = generator_table(records, baselines)
    if generators:
        best += [(m.mean, f"synthetic source: {label}") for (label, _), m in generators.items()]
        listed = ", ".join(
            f"{md_text(label)} {m.mean:.2f} % ({_pp(m.mean - r.mean)} pp vs R)" for (label, _), m in generators.items()
        )
        sentences.append(f"Synthetic sources: {listed}.")

    _, mixing = mixing_table(records, baselines)
    if mixing:
        listed = "; ".join(
            f"{md_text(arm.label)}: {m.mean:.2f} % ({_pp(m.mean - r.mean)} pp vs R)" for arm, m in mixing.items()
        )
        sentences.append(f"Mixing: {listed}.")

    if best and s:
        sentences.append(_closing_sentence(best, r, s))
    return " ".join(sentence for sentence in sentences if sentence)


def _figure_section(title: str, scope: Scope, name: str, table: list[str], *, alt: str | None = None) -> list[str]:
    """An ablation subsection: heading, its figure, its table."""
    return [f"### {title}", "", f"![{alt or title}]({scope.figure(name)})", "", *table, ""]


@section("ablations", kinds=(), order=50)
def ablations_heading(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The heading of the ablation sections below and their reading, when any ablation has runs."""
    baselines = layer_baselines(records)
    tables = (
        normalization_table(records, baselines),
        augmentation_table(records),
        texture_table(records),
        generator_table(records, baselines),
        mixing_table(records, baselines),
    )
    if not any(table for table, _ in tables):
        return []
    return [scope.heading("Ablations"), "", ablation_reading(records), ""]


def _references(records: list[ResultRecord]) -> dict[str, Summary]:
    return {k: v for k, v in layer_baselines(records).items() if k in ("R", "S")}


@section("ablation:normalization", kinds=("ablation:normalization",), order=51)
def normalization_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    table, rows = normalization_table(records, layer_baselines(records))
    if not table:
        return []
    several = len({student for student, _, _ in rows}) > 1
    bars: dict[str, dict[str, Summary]] = {}
    for (student, normalization, adabn), summary in rows.items():
        group = normalization_label(normalization, False) + (f" ({student})" if several else "")
        bars.setdefault(group, {})["with AdaBN on real images" if adabn else "as trained"] = summary
    title = "Normalization statistics of the students"
    plot_grouped_bars(bars, scope.figure_path("ablation_normalization"), title=title, references=_references(records))
    return _figure_section("Normalization", scope, "ablation_normalization", table)


@section("ablation:augmentation", kinds=("ablation:augmentation",), order=52)
def augmentation_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    table, presets = augmentation_table(records)
    if not table:
        return []
    bars = {p: {f"trained on {k}": v for k, v in by_side.items()} for p, by_side in presets.items()}
    plot_grouped_bars(bars, scope.figure_path("ablation_augmentation"), title="Augmentation presets")
    return _figure_section("Augmentation", scope, "ablation_augmentation", table)


@section("ablation:texture_shape", kinds=("ablation:texture_shape",), order=53)
def texture_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    table, students = texture_table(records)
    if not table:
        return []
    cues = {"clean": "clean", **CUE_LABELS}  # the legend names each test variant as the table does
    bars = {k: {label: v[c] for c, label in cues.items() if c in v} for k, v in students.items()}
    title = "Texture vs shape: accuracy per test variant"
    plot_grouped_bars(bars, scope.figure_path("ablation_texture"), title=title)
    return _figure_section("Texture vs shape", scope, "ablation_texture", table)


@section("ablation:generator", kinds=("ablation:generator",), order=54)
def generator_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    table, _ = generator_table(records, layer_baselines(records))
    return ["### Synthetic source (generator choice)", "", *table, ""] if table else []


@section("ablation:mixing", kinds=("ablation:mixing",), order=55)
def mixing_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    return _mixing_section(records, layer_baselines(records), _references(records), scope)


def _mixing_section(
    records: list[ResultRecord], baselines: dict[str, Summary], references: dict[str, Summary], scope: Scope
) -> list[str]:
    table, mixing = mixing_table(records, baselines)
    if not table:
        return []
    shares = {
        arm.synthetic_share: m for arm, m in mixing.items() if arm.mixing == "share" and arm.synthetic_share is not None
    }
    if not (shares and references):
        return ["### Mixing real and synthetic", "", *table, ""]
    if "R" in references:
        shares.setdefault(0.0, references["R"])  # R's training set is the 0 % mix of the same size
    if "S" in references:
        shares.setdefault(1.0, references["S"])
    plot_mixing(shares, scope.figure_path("ablation_mixing"), references=references)
    return _figure_section("Mixing real and synthetic", scope, "ablation_mixing", table, alt="Mixing")
