"""Ablation tables and their reading: which cheap fix narrows the gap R − S, and by how much (from results only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from synthgap.data.cues import CueVariants
from synthgap.experiments.results import ResultRecord
from synthgap.report.layers import layer_baselines
from synthgap.report.tables import Summary, record_side, summarize

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


def ablation_records(records: Iterable[ResultRecord], ablation: str) -> list[ResultRecord]:
    return [r for r in records if r.kind == "ablation" and (r.model_extra or {}).get("ablation") == ablation]


def _extra(record: ResultRecord, name: str, default=None):
    return (record.model_extra or {}).get(name, default)


def _summaries(records: Iterable[ResultRecord], key: Callable[[ResultRecord], tuple],
               value: Callable[[ResultRecord], float | None] = lambda r: r.top1) -> dict[tuple, Summary]:  # fmt: skip
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


def _normalization_label(variant: str) -> str:
    choice, _, adabn = variant.partition("+")
    return NORMALIZATION_LABELS.get(choice, choice) + (" + AdaBN" if adabn else "")


# --- normalization -------------------------------------------------------------------------------------------------


def normalization_table(records: list[ResultRecord], baselines: dict[str, Summary]) -> tuple[list[str], dict]:
    rows = _summaries(ablation_records(records, "normalization"), lambda r: (record_side(r), _extra(r, "variant")))
    if not rows:
        return [], {}
    lines = ["| student trained on | normalization | AdaBN on real images | top-1 (%) | vs ImageNet constants "
             "(pp) | gap to R (pp) |", "|---|---|---|---|---|---|"]  # fmt: skip
    r = baselines.get("R")
    for (student, variant), summary in rows.items():
        choice, _, adabn = variant.partition("+")
        reference = rows.get((student, "imagenet"))
        delta = _pp(summary.mean - reference.mean) if reference and variant != "imagenet" else "–"
        gap = f"{r.mean - summary.mean:.2f}" if r else "–"
        lines.append(f"| {student} | {NORMALIZATION_LABELS.get(choice, choice)} | {'yes' if adabn else 'no'} | "
                     f"{summary} | {delta} | {gap} |")  # fmt: skip
    return lines, rows


# --- augmentation --------------------------------------------------------------------------------------------------


def augmentation_table(records: list[ResultRecord]) -> tuple[list[str], dict[str, dict[str, Summary]]]:
    rows = _summaries(ablation_records(records, "augmentation"), lambda r: (_extra(r, "variant"), record_side(r)))
    presets: dict[str, dict[str, Summary]] = defaultdict(dict)
    for (preset, student), summary in rows.items():
        presets[preset][student] = summary
    if not presets:
        return [], {}
    standard = presets.get("standard", {})
    standard_gap = standard["real"].mean - standard["synthetic"].mean if len(standard) == 2 else None
    lines = ["| augmentation | R: trained on real (%) | S: trained on synthetic (%) | gap R − S (pp) | "
             "gap vs standard (pp) |", "|---|---|---|---|---|"]  # fmt: skip
    for preset, by_side in presets.items():
        real, synthetic = by_side.get("real"), by_side.get("synthetic")
        gap = real.mean - synthetic.mean if real and synthetic else None
        change = (
            _pp(gap - standard_gap) if gap is not None and standard_gap is not None and preset != "standard" else "–"
        )
        lines.append(f"| {preset} | {real or '–'} | {synthetic or '–'} | "
                     f"{'–' if gap is None else f'{gap:.2f}'} | {change} |")  # fmt: skip
    return lines, dict(presets)


# --- texture vs shape ----------------------------------------------------------------------------------------------


def _student_label(variant: str) -> str:
    if variant in ("real", "synthetic"):
        return f"{'R' if variant == 'real' else 'S'}: trained on {variant}"
    direction, _, n = variant.partition("-n")
    return f"{direction.replace('_to_', '→')}, layers 1..{n} frozen"


def _cue_settings(record: ResultRecord) -> tuple[float, int]:
    return _extra(record, "cue_sigma", CueVariants.blur_sigma), _extra(record, "cue_grid", CueVariants.grid)


def texture_table(records: list[ResultRecord]) -> tuple[list[str], dict[str, dict[str, Summary]]]:
    """One row per student and cue setting (blur sigma, patch grid); seeds are averaged, settings never."""
    chosen = ablation_records(records, "texture_shape")
    if not chosen:
        return [], {}
    settings = list(dict.fromkeys(_cue_settings(r) for r in chosen))
    key = lambda r: (_extra(r, "variant"), *_cue_settings(r))  # noqa: E731
    columns: dict[str, dict[tuple, Summary]] = {"clean": _summaries(chosen, key)}
    for cue in CUE_LABELS:
        columns[cue] = _summaries(chosen, key, lambda r, cue=cue: (_extra(r, "cue_top1") or {}).get(cue))
    columns["texture_reliance"] = _summaries(chosen, key, lambda r: _extra(r, "texture_reliance"))
    students = {}
    for variant, sigma, grid in columns["clean"]:
        label = _student_label(variant) + (f" (sigma {sigma:g}, grid {grid})" if len(settings) > 1 else "")
        students[label] = {name: col[(variant, sigma, grid)] for name, col in columns.items()
                           if (variant, sigma, grid) in col}  # fmt: skip
    lines = ["| student | clean (%) | " + " | ".join(f"{label} (%)" for label in CUE_LABELS.values())
             + " | texture reliance |", "|---|---|" + "---|" * len(CUE_LABELS) + "---|"]  # fmt: skip
    for label, values in students.items():
        cells = [str(values[c]) if c in values else "–" for c in ["clean", *CUE_LABELS]]
        reliance = values.get("texture_reliance")
        reliance_text = "–" if reliance is None else (f"{reliance.mean:.3f} ± {reliance.std:.3f}" if reliance.n > 1
                                                      else f"{reliance.mean:.3f}")  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {reliance_text} |")
    sigma, grid = settings[0]
    definition = TEXTURE_DEFINITION.format(sigma=sigma, grid=grid)
    if len(settings) > 1:
        definition += " Rows name their own sigma and grid where they differ from these."
    return [*lines, "", definition], students


# --- generator and mixing ------------------------------------------------------------------------------------------


def generator_table(records: list[ResultRecord], baselines: dict[str, Summary]) -> tuple[list[str], dict]:
    rows = _summaries(ablation_records(records, "generator"), lambda r: (_extra(r, "variant"), r.target))
    if not rows:
        return [], {}
    r = baselines.get("R")
    lines = ["| synthetic source | data | top-1 (%) on real test | gap to R (pp) |", "|---|---|---|---|"]
    for (label, ref), summary in rows.items():
        lines.append(f"| {label} | {ref} | {summary} | {f'{r.mean - summary.mean:.2f}' if r else '–'} |")
    return lines, rows


def _mixing_label(variant: str) -> str:
    if variant.startswith("share"):
        return f"{float(variant[5:]) * 100:g} % of the images synthetic (same size as R's set)"
    if variant.startswith("add"):
        return f"all real images + {variant[3:]}× as many synthetic"
    return "synthetic pretraining, then all layers fine-tuned on real" if variant == "pretrain_finetune" else variant


def mixing_table(records: list[ResultRecord], baselines: dict[str, Summary]) -> tuple[list[str], dict]:
    chosen = ablation_records(records, "mixing")
    rows = _summaries(chosen, lambda r: (_extra(r, "variant"),))
    if not rows:
        return [], {}
    sizes = {(_extra(r, "variant"),): (_extra(r, "real_images"), _extra(r, "synthetic_images")) for r in chosen}
    r = baselines.get("R")
    lines = ["| training | real images | synthetic images | top-1 (%) | vs R (pp) |", "|---|---|---|---|---|"]
    for (variant,), summary in rows.items():
        real_images, synthetic_images = sizes[(variant,)]
        if variant == "pretrain_finetune":  # the synthetic images trained the model before, not with, the real ones
            synthetic_images = "S's training set, before"
        lines.append(f"| {_mixing_label(variant)} | {real_images} | {synthetic_images} | {summary} | "
                     f"{_pp(summary.mean - r.mean) if r else '–'} |")  # fmt: skip
    return lines, {k[0]: v for k, v in rows.items()}


# --- the reading ---------------------------------------------------------------------------------------------------


def ablation_reading(records: list[ResultRecord]) -> str:
    """A plain-language paragraph, computed from the numbers: how each ablation moves the gap R − S."""
    baselines = layer_baselines(records)
    r, s = baselines.get("R"), baselines.get("S")
    if not r:
        return "The real-data baseline R is missing, so no ablation can be read against it."
    gap = r.mean - s.mean if s else None
    if s:
        sentences = [f"The baselines give R = {r.mean:.2f} % and S = {s.mean:.2f} %, a gap R − S of {gap:.2f} pp."]
    else:
        sentences = [f"The real-data baseline gives R = {r.mean:.2f} % (no synthetic baseline S was run)."]
    best: list[tuple[float, str]] = []  # (top-1 of a student that saw synthetic images only, what it was)

    _, normalization = normalization_table(records, baselines)
    synthetic_rows = {v: m for (student, v), m in normalization.items() if student == "synthetic"}
    if "imagenet" in synthetic_rows and len(synthetic_rows) > 1:
        reference = synthetic_rows["imagenet"].mean
        changes = [f"{_normalization_label(v)} {_pp(m.mean - reference)} pp" for v, m in synthetic_rows.items()
                   if v != "imagenet"]  # fmt: skip
        top_variant, top = max(synthetic_rows.items(), key=lambda item: item[1].mean)
        # AdaBN sees unlabelled real images, so it does not count as training on synthetic images only
        best += [
            (m.mean, f"normalization: {_normalization_label(v)}") for v, m in synthetic_rows.items() if "+" not in v
        ]
        sentences.append(
            f"Normalization: against the synthetic student with ImageNet constants ({reference:.2f} %), "
            + "; ".join(changes)
            + f"; the best setting ({_normalization_label(top_variant)}) leaves a gap to R of "
            f"{r.mean - top.mean:.2f} pp."
        )

    _, presets = augmentation_table(records)
    gaps = {p: v["real"].mean - v["synthetic"].mean for p, v in presets.items() if len(v) == 2}
    best += [(v["synthetic"].mean, f"augmentation: {p}") for p, v in presets.items() if "synthetic" in v]
    if len(gaps) > 1:
        narrowest, widest = min(gaps, key=gaps.get), max(gaps, key=gaps.get)
        standard = f" (standard crop + flip: {gaps['standard']:.2f} pp)" if "standard" in gaps and "standard" not in (
            narrowest, widest) else ""  # fmt: skip
        sentences.append(
            f"Augmentation: the gap R − S ranges from {gaps[narrowest]:.2f} pp ({narrowest}) to "
            f"{gaps[widest]:.2f} pp ({widest}){standard}, both students trained with each preset."
        )
    elif gaps:
        ((preset, value),) = gaps.items()
        sentences.append(f"Augmentation: with {preset}, the gap R − S is {value:.2f} pp.")

    _, students = texture_table(records)
    reliance = {k: v["texture_reliance"].mean for k, v in students.items() if "texture_reliance" in v}
    if reliance:
        sentences.append("Texture reliance: " + ", ".join(f"{k} {v:.3f}" for k, v in reliance.items())
                         + " (0 = shape only, 1 = texture only).")  # fmt: skip

    _, generators = generator_table(records, baselines)
    if generators:
        best += [(m.mean, f"synthetic source: {label}") for (label, _), m in generators.items()]
        sentences.append("Synthetic sources: " + ", ".join(f"{label} {m.mean:.2f} % ({_pp(m.mean - r.mean)} pp vs R)"
                                                            for (label, _), m in generators.items()) + ".")  # fmt: skip

    _, mixing = mixing_table(records, baselines)
    if mixing:
        sentences.append("Mixing: " + "; ".join(f"{_mixing_label(v)}: {m.mean:.2f} % ({_pp(m.mean - r.mean)} pp vs R)"
                                                for v, m in mixing.items()) + ".")  # fmt: skip

    if best and s:
        top, what = max(best)
        if top >= r.mean:
            sentences.append(f"One setting that trains on synthetic images only reaches R: {what}, {top:.2f} %.")
        elif top <= s.mean:
            sentences.append("No setting that trains on synthetic images only improves on S.")
        else:
            sentences.append(f"None of the settings that train on synthetic images only closes the gap: the best "
                             f"({what}, {top:.2f} %) recovers {100.0 * (top - s.mean) / gap:.0f} % of it.")  # fmt: skip
    return " ".join(sentences)
