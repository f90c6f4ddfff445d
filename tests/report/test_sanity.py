"""Sanity flags: each rule fires on a planted case and stays quiet on a healthy experiment; a low-R² reduction fit is
never extrapolated."""

from __future__ import annotations

import pytest

from synthgap.experiments.results import append_result
from synthgap.report.build import build_report
from synthgap.report.layers import layer_baselines
from synthgap.report.reduction import reduction_fits, reduction_points, reduction_reading
from synthgap.report.sanity import DEFAULT_AUGMENTATION, sanity_flags
from tests.report.records import make_record
from tests.report.test_reduction import reduction

REAL, SYNTH = "cifake:real", "cifake:synthetic"
CLASSES = [f"c{i}" for i in range(10)]  # chance: 10%


def transfer(n: int, top1: float, **fields):
    return make_record(
        **{
            "run": f"s2r-n{n}",
            "kind": "layer_transfer",
            "source": SYNTH,
            "source_side": "synthetic",
            "target": REAL,
            "side": "real",
            "n_transferred": n,
            "frozen": True,
            "top1": top1,
            "augmentation": "standard",
            **fields,
        }
    )


def healthy() -> list:
    """R > S, equal sizes, students well above chance, stage 2 with the baselines' epochs and default augmentation,
    a reduction arm that follows its log fit."""
    return [
        make_record(run="R", side="real", target=REAL, top1=80.0, classes=CLASSES, train_images=5000),
        make_record(run="S", side="synthetic", target=SYNTH, top1=60.0, classes=CLASSES, train_images=5000),
        transfer(8, 70.0),
        transfer(16, 75.0),
        transfer(18, 60.0, epochs=0, train_images=0),  # the source model unchanged: trains nothing
        *(reduction("transfer", x, 0, 80.0 - 2 * i) for i, x in enumerate((1, 2, 4, 8))),
    ]


def replaced(records: list, run: str, **update) -> list:
    return [r.model_copy(update=update) if r.run == run else r for r in records]


def test_a_healthy_experiment_has_no_flags():
    assert sanity_flags(healthy()) == []


def test_the_default_augmentation_is_the_recipe_default():
    from synthgap.train.recipe import TrainRecipe

    assert DEFAULT_AUGMENTATION == TrainRecipe().augmentation


def test_student_at_chance():
    flags = sanity_flags(replaced(healthy(), "s2r-n8", top1=11.5))
    assert len(flags) == 1
    assert flags[0].startswith("1 of 9 students are at or below chance (10.00% top-1 for 10 classes, + 2 pp)")
    assert "s2r-n8 (11.50%)" in flags[0]
    assert sanity_flags(replaced(healthy(), "s2r-n8", top1=12.5)) == []  # above the margin
    # the class count can also come from per-class results; without either there is no chance level to compare with
    per_class = [r.model_copy(update={"classes": None, "per_class_top1": [10.0] * 4}) for r in healthy()]
    assert "for 4 classes" in sanity_flags(replaced(per_class, "S", top1=20.0))[0]
    unknown = [r.model_copy(update={"classes": None}) for r in healthy()]
    assert sanity_flags(replaced(unknown, "s2r-n8", top1=1.0)) == []


def test_many_students_at_chance_are_one_line_naming_a_few():
    records = healthy() + [transfer(n, 5.0, run=f"low-{n}") for n in range(1, 7)]
    (flag,) = sanity_flags(records)
    assert (
        "6 of 15 students" in flag and "low-1 (5.00%), low-2 (5.00%), low-3 (5.00%), low-4 (5.00%) and 2 more" in flag
    )


def test_s_not_below_r():
    (flag,) = sanity_flags(replaced(healthy(), "S", top1=80.0))
    assert flag.startswith("S (trained on synthetic data, 80.00%) is not below R (trained on real data, 80.00%)")


def test_sides_of_very_different_size():
    (flag,) = sanity_flags(replaced(healthy(), "S", train_images=13000))
    assert flag.startswith("R trained on 5,000 images and S on 13,000 (S on 2.6× as many)")
    assert sanity_flags(replaced(healthy(), "S", train_images=10000)) == []  # exactly 2×: not flagged


def test_stage_two_recipe_that_differs_from_the_baselines():
    no_aug = [r.model_copy(update={"augmentation": "none"}) if r.kind == "layer_transfer" else r for r in healthy()]
    (flag,) = sanity_flags(no_aug)
    assert flag.startswith(
        "Stage 2 of the layer transfer trained with augmentation none; R and S with the recipe's augmentation "
        "(not recorded; 'standard' unless the spec sets it)."
    )
    assert "can beat (or trail) R for that reason alone: add N = 0 to the sweep" in flag
    fewer_epochs = replaced(healthy(), "s2r-n8", epochs=3) + [transfer(0, 70.0, run="s2r-n0")]
    (flag,) = sanity_flags(fewer_epochs)
    assert flag.startswith("Stage 2 of the layer transfer trained with 1 / 3 epochs; R and S with 1 epoch.")
    assert "compare with the sweep's N = 0 points" in flag
    # a baseline that records its augmentation (a newer field) is compared directly
    recorded = [r.model_copy(update={"augmentation": "none"}) if r.kind == "baseline" else r for r in no_aug]
    assert sanity_flags(recorded) == []
    strong = [r.model_copy(update={"augmentation": "strong"}) if r.kind == "baseline" else r for r in no_aug]
    (flag,) = sanity_flags(strong)
    assert "trained with augmentation none; R and S with augmentation strong." in flag


def test_flags_of_several_families_are_tagged():
    baselines = [r for r in replaced(healthy(), "S", top1=90.0) if r.kind == "baseline"]
    other = [r.model_copy(update={"model": "resnet50", "num_layers": 50}) for r in baselines]
    flags = sanity_flags(healthy() + other)
    assert len(flags) == 1 and flags[0].startswith("resnet50: S (trained on synthetic data, 90.00%)")


NOISY = [
    make_record(run="R", side="real", target=REAL, top1=80.0),
    *(reduction("transfer", x, 0, y) for x, y in ((1, 70.0), (2, 78.0), (4, 66.0), (8, 74.0), (16, 69.0))),
]


def test_low_r2_fit_is_flagged_and_never_extrapolated():
    fit = reduction_fits(NOISY)["transfer"].fit
    assert fit.r2 < 0.5
    (flag,) = sanity_flags(NOISY)
    assert flag.startswith(f"The data-reduction fit of transfer has R² = {fit.r2:.2f} (below 0.5)")
    reading = reduction_reading(reduction_points(NOISY), reduction_fits(NOISY), layer_baselines(NOISY), d=20.0)
    assert "unknown (transfer: the fit is unreliable, R² = " in reading
    assert "beyond the largest measured x = 16; not extrapolated)" in reading
    assert "extrapolated beyond" not in reading and "1/" not in reading.split("Smallest fraction")[1].split(".")[0]
    assert f"pp (transfer; the fit is unreliable, R² = {fit.r2:.2f} < 0.5)" in reading  # the per-decade loss too


def test_low_r2_fit_inside_the_measured_range_is_given_with_its_warning():
    reading = reduction_reading(reduction_points(NOISY), reduction_fits(NOISY), layer_baselines(NOISY), d=9.0)
    fraction = reading.split("Smallest fraction")[1]
    assert "(transfer; the fit is unreliable, R² = " in fraction and "unknown" not in fraction.split(".")[0]


@pytest.mark.parametrize("planted", [True, False])
def test_report_lists_warnings_after_the_run_count(tmp_path, planted):
    records = replaced(healthy(), "S", top1=85.0) if planted else healthy()
    for r in records:
        append_result(tmp_path, r)
    lines = build_report(tmp_path).read_text().splitlines()
    if planted:
        assert lines[2:7] == ["9 finished runs.", "", "## Warnings", "", lines[6]]
        assert lines[6].startswith("- S (trained on synthetic data, 85.00%) is not below R")
    else:
        assert "## Warnings" not in lines


def test_records_from_different_processors_or_precisions_are_flagged():
    amx = {"device": "cpu", "threads": 2, "precision": "bf16", "processor": "AMX"}
    avx512 = {**amx, "processor": "AVX-512-BF16"}
    same = [r.model_copy(update={"compute": amx}) for r in healthy()]
    assert sanity_flags(same) == []
    mixed = replaced(same, "S", compute=avx512)
    (flag,) = sanity_flags(mixed)
    assert flag.startswith("These results were computed on different machines or precisions: ")
    assert "1 on cpu AVX-512-BF16 in bf16 (e.g. S)" in flag and "on cpu AMX in bf16 (e.g. R)" in flag
    # records written before the processor was recorded say nothing about it: no flag
    assert sanity_flags(replaced(healthy(), "S", compute=avx512)) == []
