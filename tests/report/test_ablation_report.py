"""Ablation tables, figures and reading computed from hand-made results (known numbers in, known text out).

Ablation records are built with variant="" (the label of old versions appears only where a test says so): the report
must read the typed fields, never the label."""

from synthgap.experiments.results import ResultRecord, append_result
from synthgap.report.ablations import (
    MixingArm,
    ablation_reading,
    augmentation_table,
    mixing_table,
    normalization_table,
    texture_table,
)
from synthgap.report.build import build_report
from synthgap.report.layers import layer_baselines
from tests.report.records import make_record

SYNTH = "cifake:synthetic"
CUES = {"grayscale_blur": 20, "edges": 10, "patch_shuffle": 25}


def ablation(run, top1, ablation, *, seed=0, side="synthetic", target=SYNTH, **fields) -> ResultRecord:
    return make_record(
        run=f"{run}-s{seed}",
        kind="ablation",
        ablation=ablation,
        variant="",
        side=side,
        target=target,
        seed=seed,
        top1=top1,
        **fields,
    )


def baselines(seed=0, shift=0.0) -> list[ResultRecord]:
    return [
        make_record(run=f"baseline-real-s{seed}", side="real", target="cifake:real", seed=seed, top1=60 + shift),
        make_record(run=f"baseline-synthetic-s{seed}", side="synthetic", target=SYNTH, seed=seed, top1=40 + shift),
    ]


def results() -> list[ResultRecord]:
    out = []
    real = {"side": "real", "target": "cifake:real"}
    for seed, shift in ((0, -1.0), (1, 1.0)):
        out += baselines(seed, shift)
        out += [
            ablation("norm-imagenet", 40 + shift, "normalization", seed=seed, normalization="imagenet"),
            ablation("norm-real", 44 + shift, "normalization", seed=seed, normalization="real"),
            ablation("norm-real-adabn", 47 + shift, "normalization", seed=seed, normalization="real", adabn=True),
            ablation("aug-r-std", 60 + shift, "augmentation", seed=seed, augmentation="standard", **real),
            ablation("aug-s-std", 40 + shift, "augmentation", seed=seed, augmentation="standard"),
            ablation("aug-r-ra", 62 + shift, "augmentation", seed=seed, augmentation="randaugment", **real),
            ablation("aug-s-ra", 50 + shift, "augmentation", seed=seed, augmentation="randaugment"),
            ablation("tex-s", 40, "texture_shape", seed=seed, student="synthetic", cue_top1=CUES, texture_reliance=0.6),
            ablation(
                "mix-0.5",
                55 + shift,
                "mixing",
                seed=seed,
                side="real",
                target="cifake:real+cifake:synthetic",
                mixing="share",
                synthetic_share=0.5,
                real_images=5,
                synthetic_images=5,
            ),
            ablation(
                "mix-ft",
                63 + shift,
                "mixing",
                seed=seed,
                mixing="pretrain_finetune",
                source=SYNTH,
                source_side="synthetic",
                real_images=10,
                synthetic_images=0,
                **real,
            ),
        ]
    return out


def test_tables_average_over_seeds_and_compare_with_the_reference_setting():
    lines, presets = augmentation_table(results())
    assert presets["randaugment"]["synthetic"].mean == 50 and presets["randaugment"]["synthetic"].n == 2
    assert "| randaugment | 62.00 ± 1.41 | 50.00 ± 1.41 | 12.00 | -8.00 |" in lines
    lines, mixing = mixing_table(results(), {})
    assert (
        mixing[MixingArm("share", synthetic_share=0.5)].mean == 55
        and "| 50 % of the images synthetic (same size as R's set) | 5 | 5 |" in lines[2]
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
    cues = {"grayscale_blur": 30, "edges": 30, "patch_shuffle": 10}
    runs = [
        ablation("tex-a", 40, "texture_shape", student="synthetic", cue_top1=CUES, texture_reliance=0.6),
        ablation(
            "tex-b",
            40,
            "texture_shape",
            student="synthetic",
            cue_top1=cues,
            texture_reliance=0.0,
            cue_sigma=2.0,
            cue_grid=8,
        ),
    ]
    _, students = texture_table(runs)
    assert set(students) == {"S: trained on synthetic (sigma 1, grid 4)", "S: trained on synthetic (sigma 2, grid 8)"}
    assert all(v["texture_reliance"].n == 1 for v in students.values())


def test_any_data_set_names_work_through_the_recorded_side(tmp_path):
    real, synthetic = "imagenet100:/data/imagenet", "generated:/gen/sd14"
    runs = [
        make_record(run="baseline-real", target=real, side="real", top1=80),
        make_record(run="baseline-synthetic", target=synthetic, side="synthetic", top1=55),
        ablation("aug-r", 81, "augmentation", target=real, side="real", augmentation="standard"),
        ablation("aug-s", 56, "augmentation", target=synthetic, augmentation="standard"),
        ablation("aug-s-none", 50, "augmentation", target=synthetic, augmentation="none"),
        ablation("gen-unclip", 70, "generator", target="generated:/gen/unclip", label="unclip"),
    ]
    text = ablation_reading(runs)
    assert "R = 80.00 % and S = 55.00 %" in text and "with standard, the gap R − S is 25.00 pp" in text
    assert "unclip 70.00 % (-10.00 pp vs R)" in text and "(synthetic source: unclip, 70.00 %) recovers 60 %" in text
    for r in runs:
        append_result(tmp_path, r)
    assert "**Gap R − S: 25.00 pp**" in build_report(tmp_path).read_text()


def test_reading_without_improvement_or_without_s():
    runs = [*baselines(), ablation("aug-s-none", 35, "augmentation", augmentation="none")]
    assert "No setting that trains on synthetic images only improves on S." in ablation_reading(runs)
    assert "no synthetic baseline S was run" in ablation_reading(runs[:1])
    assert "baseline R is missing" in ablation_reading(runs[1:])


def test_tables_read_the_typed_fields():
    transfer = {"side": "real", "target": "cifake:real", "source": SYNTH, "source_side": "synthetic"}
    runs = [
        *baselines(),
        ablation("norm-imagenet", 41, "normalization", normalization="imagenet"),
        ablation("norm-own-adabn", 45, "normalization", normalization="per_dataset", adabn=True),
        ablation("norm-real-student", 58, "normalization", side="real", target="cifake:real", normalization="real"),
        ablation(
            "tex-t", 50, "texture_shape", student="synthetic_to_real", n_transferred=12, cue_top1=CUES, **transfer
        ),
        ablation(
            "mix-add",
            61,
            "mixing",
            side="real",
            mixing="added",
            added_synthetic=2.0,
            real_images=10,
            synthetic_images=20,
        ),
        ablation("mix-share", 57, "mixing", side="real", mixing="share", synthetic_share=0.25),
    ]
    lines, rows = normalization_table(runs, layer_baselines(runs))
    assert "| synthetic | each data set's own statistics | yes | 45.00 | +4.00 | 15.00 |" in lines
    assert "| real | real-data statistics | no | 58.00 | – | 2.00 |" in lines
    assert set(rows) == {("synthetic", "imagenet", False), ("synthetic", "per_dataset", True), ("real", "real", False)}
    assert "each data set's own statistics + AdaBN +4.00 pp" in ablation_reading(runs)
    _, students = texture_table(runs)
    assert list(students) == ["synthetic→real, layers 1..12 frozen"]
    lines, mixing = mixing_table(runs, {})
    assert "| all real images + 2× as many synthetic | 10 | 20 | 61.00 | – |" in lines
    assert mixing[MixingArm("share", synthetic_share=0.25)].mean == 57
    assert "25 % of the images synthetic (same size as R's set)" in "\n".join(lines)


def test_ablation_records_without_typed_fields_are_left_out_of_the_tables():
    old = [  # as written by versions that had only the variant label (and no side)
        make_record(run="n", kind="ablation", ablation="normalization", variant="real+adabn", side=None),
        make_record(run="m", kind="ablation", ablation="mixing", variant="share0.5"),
        make_record(run="t", kind="ablation", ablation="texture_shape", variant="synthetic"),
    ]
    assert normalization_table(old, {}) == ([], {})
    assert mixing_table(old, {}) == ([], {})
    assert texture_table(old) == ([], {})
