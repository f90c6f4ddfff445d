"""Sanity flags: results that must not be read without a warning, one line each.

`sanity_flags(records)` is what the report's "Warnings" section lists and what `synthgap run` prints after an
experiment. Each rule looks at the records of one model family (a folder holding several tags each line with its
family) and stays quiet when it cannot decide (e.g. the chance level of records that do not say how many classes
there are):

- a student at or below chance: top-1 ≤ 100 / C + `CHANCE_MARGIN` pp (C classes);
- S ≥ R: no gap to explain;
- sides of very different size: one baseline trained on more than `SIZE_RATIO` × the images of the other;
- a data-reduction fit with R² < `fits.RELIABLE_R2`: its slope and any fraction read from it are unreliable;
- a stage-2 recipe that differs from the baselines': layer-transfer students trained with other epochs or another
  augmentation than R and S, so they can beat (or trail) R for that reason alone;
- records computed on different kinds of processor or in different precisions (bf16 on AMX and on AVX-512-BF16
  gives different numbers, fp32 on AVX-512 and AVX2 too): comparisons across them mix arithmetic with the effect.
"""

from __future__ import annotations

from synthgap.experiments.kinds.layer_transfer import TransferRecord
from synthgap.experiments.results import BaselineRecord, ResultRecord
from synthgap.report.classes import class_count
from synthgap.report.fits import RELIABLE_R2
from synthgap.report.reduction import arm_fits
from synthgap.report.tables import by_model, layer_count, side_baselines, summarize

CHANCE_MARGIN = 2.0  # pp above 100 / C still counted as chance: a few test images either way
SIZE_RATIO = 2.0
NAMED_RUNS = 4  # a flag names at most this many runs
# TrainRecipe's default (a test checks they agree); spelled out so that drawing a report never imports torch
DEFAULT_AUGMENTATION = "standard"


def sanity_flags(records: list[ResultRecord]) -> list[str]:
    """One line per problem found in `records` (empty when nothing looks wrong)."""
    families = by_model(records)
    flags = []
    for model, family in families.items():
        tag = f"{model}: " if len(families) > 1 else ""
        for rule in (_chance, _s_not_below_r, _size_ratio, _unreliable_fits, _stage_two_recipe, _mixed_compute):
            flags += [tag + line for line in rule(family)]
    return flags


def _named(records: list[ResultRecord]) -> str:
    names = ", ".join(f"{r.run} ({r.top1:.2f}%)" for r in records[:NAMED_RUNS])
    more = len(records) - NAMED_RUNS
    return names + (f" and {more} more" if more > 0 else "")


def _chance(records: list[ResultRecord]) -> list[str]:
    classes = class_count(records)
    if not classes or classes < 2:
        return []
    chance = 100.0 / classes
    low = [r for r in records if r.top1 <= chance + CHANCE_MARGIN]
    if not low:
        return []
    return [
        f"{len(low)} of {len(records)} students are at or below chance ({chance:.2f}% top-1 for {classes} classes, "
        f"+ {CHANCE_MARGIN:g} pp): {_named(low)}. They learned next to nothing; check data, labels and training "
        "length before reading any comparison that involves them."
    ]


def _s_not_below_r(records: list[ResultRecord]) -> list[str]:
    sided = side_baselines(records)
    if "R" not in sided or "S" not in sided:
        return []
    r, s = summarize([x.top1 for x in sided["R"]]), summarize([x.top1 for x in sided["S"]])
    if s.mean < r.mean:
        return []
    return [
        f"S (trained on synthetic data, {s.mean:.2f}%) is not below R (trained on real data, {r.mean:.2f}%): there "
        "is no gap R − S to locate, and shares of it recovered mean nothing. Check which side is which, and whether "
        "R trained long enough."
    ]


def _size_ratio(records: list[ResultRecord]) -> list[str]:
    sided = side_baselines(records)
    if "R" not in sided or "S" not in sided:
        return []
    r, s = max(x.train_images for x in sided["R"]), max(x.train_images for x in sided["S"])
    if min(r, s) <= 0 or max(r, s) / min(r, s) <= SIZE_RATIO:
        return []
    larger = "S" if s > r else "R"
    return [
        f"R trained on {r:,} images and S on {s:,} ({larger} on {max(r, s) / min(r, s):.1f}× as many): the gap "
        "R − S mixes where the images come from with how many there are. Use the same number per class "
        "(data.per_class) to compare the sources."
    ]


def _unreliable_fits(records: list[ResultRecord]) -> list[str]:
    out = []
    for key, fit in arm_fits(records).items():
        if fit.r2 < RELIABLE_R2:
            out.append(
                f"The data-reduction fit of {key} has R² = {fit.r2:.2f} (below {RELIABLE_R2:g}): f(x) = a·log10(x) + b "
                "does not describe its points, so its slope and any fraction of the real data read from it are "
                "unreliable; the reading does not extrapolate it."
            )
    return out


def _stage_two_recipe(records: list[ResultRecord]) -> list[str]:
    """Layer-transfer students (that trained something: N < L) whose epochs or augmentation differ from the
    baselines'. Baselines record their epochs; their augmentation only where the record carries an `augmentation`
    field. Without it, an augmentation other than the recipe default is flagged, said to be a guess."""
    baselines = [r for group in side_baselines(records).values() for r in group]
    students = [r for r in records if isinstance(r, TransferRecord) and r.n_transferred < layer_count(r)]
    if not baselines or not students:
        return []
    differences, theirs = [], []
    student_epochs = sorted({r.epochs for r in students})
    baseline_epochs = sorted({r.epochs for r in baselines})
    if student_epochs != baseline_epochs:
        differences.append(_epochs(student_epochs))
        theirs.append(_epochs(baseline_epochs))
    student_aug = sorted({r.augmentation for r in students if r.augmentation is not None})
    known = sorted({a for r in baselines if isinstance(r, BaselineRecord) and (a := _augmentation(r)) is not None})
    if known and student_aug and student_aug != known:
        differences.append(f"augmentation {_listed(student_aug)}")
        theirs.append(f"augmentation {_listed(known)}")
    elif not known and any(a != DEFAULT_AUGMENTATION for a in student_aug):
        differences.append(f"augmentation {_listed(student_aug)}")
        theirs.append(f"the recipe's augmentation (not recorded; '{DEFAULT_AUGMENTATION}' unless the spec sets it)")
    if not differences:
        return []
    same_recipe = any(r.n_transferred == 0 for r in students)
    fair = (
        "compare with the sweep's N = 0 points (trained from scratch with the stage-2 recipe) instead"
        if same_recipe
        else "add N = 0 to the sweep for references trained from scratch with the stage-2 recipe"
    )
    return [
        f"Stage 2 of the layer transfer trained with {' and '.join(differences)}; R and S with "
        f"{' and '.join(theirs)}. A synthetic→real student can beat (or trail) R for that reason alone: {fair}."
    ]


def _augmentation(record: BaselineRecord) -> str | None:
    """The baseline's augmentation, when its record carries one (an extra field: older records do not)."""
    value = getattr(record, "augmentation", None)
    return value if isinstance(value, str) else None


def _epochs(values: list[int]) -> str:
    return f"{_listed(values)} epoch{'' if values == [1] else 's'}"


def _listed(values: list) -> str:
    return " / ".join(str(v) for v in values)


def _mixed_compute(records: list[ResultRecord]) -> list[str]:
    """Records that name their compute and disagree on the processor kind, the device or the precision."""
    kinds: dict[tuple, list[ResultRecord]] = {}
    for record in records:
        compute = record.compute or {}
        if "processor" in compute:
            key = (compute.get("device"), compute.get("processor"), compute.get("precision"))
            kinds.setdefault(key, []).append(record)
    if len(kinds) < 2:
        return []
    parts = [
        f"{len(group)} on {device} {processor} in {precision} (e.g. {group[0].run})"
        for (device, processor, precision), group in kinds.items()
    ]
    return [
        f"These results were computed on different machines or precisions: {'; '.join(parts)}. The same training "
        "gives different numbers on each, so differences between these groups mix arithmetic with the effect."
    ]
