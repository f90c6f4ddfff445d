"""Ablation tables, figures and reading computed from hand-made results (known numbers in, known text out)."""

from synthgap.experiments.results import ResultRecord, append_result
from synthgap.report.ablations import ablation_reading, augmentation_table, mixing_table, texture_table
from synthgap.report.build import build_report


def record(run, top1, *, kind="ablation", target="cifake:synthetic", seed=0, **extra) -> ResultRecord:
    return ResultRecord(run=f"{run}-s{seed}", kind=kind, source=extra.pop("source", None), target=target,
                        n_transferred=0, frozen=False, seed=seed, epochs=1, top1=top1, top5=99.0, train_images=10,
                        seconds=1.0, **extra)  # fmt: skip


def results() -> list[ResultRecord]:
    out = []
    for seed, shift in ((0, -1.0), (1, 1.0)):
        out += [
            record("baseline-real", 60 + shift, kind="baseline", target="cifake:real", seed=seed),
            record("baseline-synthetic", 40 + shift, kind="baseline", seed=seed),
            record("norm-imagenet", 40 + shift, seed=seed, ablation="normalization", variant="imagenet"),
            record("norm-real", 44 + shift, seed=seed, ablation="normalization", variant="real"),
            record("norm-real-adabn", 47 + shift, seed=seed, ablation="normalization", variant="real+adabn"),
            record("aug-r-std", 60 + shift, target="cifake:real", seed=seed, ablation="augmentation",
                   variant="standard"),
            record("aug-s-std", 40 + shift, seed=seed, ablation="augmentation", variant="standard"),
            record("aug-r-ra", 62 + shift, target="cifake:real", seed=seed, ablation="augmentation",
                   variant="randaugment"),
            record("aug-s-ra", 50 + shift, seed=seed, ablation="augmentation", variant="randaugment"),
            record("tex-s", 40, seed=seed, ablation="texture_shape", variant="synthetic",
                   cue_top1={"grayscale_blur": 20, "edges": 10, "patch_shuffle": 25}, texture_reliance=0.6,
                   cue_sigma=1.0, cue_grid=4),
            record("mix-0.5", 55 + shift, target="cifake:real+cifake:synthetic", seed=seed, ablation="mixing",
                   variant="share0.5", real_images=5, synthetic_images=5),
            record("mix-ft", 63 + shift, target="cifake:real", seed=seed, ablation="mixing",
                   variant="pretrain_finetune", real_images=10, synthetic_images=0, source="cifake:synthetic"),
        ]  # fmt: skip
    return out


def test_tables_average_over_seeds_and_compare_with_the_reference_setting():
    lines, presets = augmentation_table(results())
    assert presets["randaugment"]["synthetic"].mean == 50 and presets["randaugment"]["synthetic"].n == 2
    assert "| randaugment | 62.00 ± 1.41 | 50.00 ± 1.41 | 12.00 | -8.00 |" in lines
    lines, mixing = mixing_table(results(), {})
    assert (
        mixing["share0.5"].mean == 55 and "| 50 % of the images synthetic (same size as R's set) | 5 | 5 |" in lines[2]
    )
    lines, students = texture_table(results())
    assert students["S: trained on synthetic"]["texture_reliance"].mean == 0.6 and "Texture-reliance score" in lines[-1]
    assert "4×4 grid" in lines[-1]


def test_reading_states_how_much_each_ablation_moves_the_gap():
    text = ablation_reading(results())
    assert "R = 60.00 % and S = 40.00 %, a gap R − S of 20.00 pp" in text
    assert "real-data statistics +4.00 pp" in text and "real-data statistics + AdaBN +7.00 pp" in text
    assert "ranges from 12.00 pp (randaugment) to 20.00 pp (standard)" in text
    assert "S: trained on synthetic 0.600" in text
    assert "synthetic pretraining, then all layers fine-tuned on real: 63.00 % (+3.00 pp vs R)" in text
    assert "None of the settings that train on synthetic images only closes the gap" in text
    assert "(augmentation: randaugment, 50.00 %) recovers 50 % of it" in text


def test_report_has_an_ablation_section_with_figures(tmp_path):
    for r in results():
        append_result(tmp_path, r)
    report = build_report(tmp_path).read_text()
    assert "## Ablations" in report and "### Normalization" in report and "### Mixing real and synthetic" in report
    for name in ("normalization", "augmentation", "texture", "mixing"):
        assert (tmp_path / "figures" / f"ablation_{name}.png").stat().st_size > 10_000
    assert "<h2>Ablations</h2>" in (tmp_path / "report.html").read_text()


def test_texture_rows_keep_cue_settings_apart():
    runs = [record("tex-a", 40, ablation="texture_shape", variant="synthetic", cue_top1={"grayscale_blur": 20,
                   "edges": 10, "patch_shuffle": 25}, texture_reliance=0.6, cue_sigma=1.0, cue_grid=4),
            record("tex-b", 40, ablation="texture_shape", variant="synthetic", cue_top1={"grayscale_blur": 30,
                   "edges": 30, "patch_shuffle": 10}, texture_reliance=0.0, cue_sigma=2.0, cue_grid=8)]  # fmt: skip
    _, students = texture_table(runs)
    assert set(students) == {"S: trained on synthetic (sigma 1, grid 4)", "S: trained on synthetic (sigma 2, grid 8)"}
    assert all(v["texture_reliance"].n == 1 for v in students.values())


def test_any_data_set_names_work_through_the_recorded_side(tmp_path):
    real, synthetic = "imagenet100:/data/imagenet", "generated:/gen/sd14"
    runs = [
        record("baseline-real", 80, kind="baseline", target=real, side="real"),
        record("baseline-synthetic", 55, kind="baseline", target=synthetic, side="synthetic"),
        record("aug-r", 81, target=real, side="real", ablation="augmentation", variant="standard"),
        record("aug-s", 56, target=synthetic, side="synthetic", ablation="augmentation", variant="standard"),
        record("aug-s-none", 50, target=synthetic, side="synthetic", ablation="augmentation", variant="none"),
        record("gen-unclip", 70, target="generated:/gen/unclip", side="synthetic", ablation="generator",
               variant="unclip"),
    ]  # fmt: skip
    text = ablation_reading(runs)
    assert "R = 80.00 % and S = 55.00 %" in text and "with standard, the gap R − S is 25.00 pp" in text
    assert "unclip 70.00 % (-10.00 pp vs R)" in text and "(synthetic source: unclip, 70.00 %) recovers 60 %" in text
    for r in runs:
        append_result(tmp_path, r)
    assert "**Gap R − S: 25.00 pp**" in build_report(tmp_path).read_text()


def test_reading_without_improvement_or_without_s():
    runs = [record("baseline-real", 60, kind="baseline", target="cifake:real"),
            record("baseline-synthetic", 40, kind="baseline"),
            record("aug-s-none", 35, ablation="augmentation", variant="none")]  # fmt: skip
    assert "No setting that trains on synthetic images only improves on S." in ablation_reading(runs)
    assert "no synthetic baseline S was run" in ablation_reading(runs[:1])
    assert "baseline R is missing" in ablation_reading(runs[1:])
