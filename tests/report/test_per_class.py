"""Per-class results: balanced top-1 columns, the per-class gap table and figure, confusion matrices, example images,
and the HTML page they end up in."""

from __future__ import annotations

import pytest
import torch

from synthgap.data.tensors import ImageTensors
from synthgap.experiments.results import append_result
from synthgap.report.build import all_runs_lines, build_report
from synthgap.report.class_figures import confusion_figure, per_class_figure, row_normalised
from synthgap.report.classes import (
    class_count,
    first_seed_confusions,
    per_class_gaps,
    per_class_reading,
    per_class_table_lines,
)
from synthgap.report.examples import example_rows
from synthgap.report.tables import gap_lines
from tests.experiments.test_examples import StubStore
from tests.report.records import make_record, transfer_record

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REAL, SYNTH = "cifake:real", "cifake:synthetic"
CLASSES = ["cat", "dog", "fox"]


def baseline(side: str, seed: int, per_class: list[float], confusion: list[list[int]] | None = None):
    return make_record(
        run=f"baseline-{side}-s{seed}",
        target=REAL if side == "real" else SYNTH,
        side=side,
        seed=seed,
        top1=sum(per_class) / len(per_class),
        balanced_top1=sum(per_class) / len(per_class),
        per_class_top1=per_class,
        classes=CLASSES,
        confusion=confusion,
    )


def student(n: int, seed: int, per_class: list[float]):
    mean = sum(per_class) / len(per_class)
    return transfer_record(n, mean, run=f"s2r-n{n}-s{seed}", seed=seed, balanced_top1=mean, per_class_top1=per_class)


# Gaps (mean over two seeds): cat 40 (80 − 40), dog 10 (70 − 60), fox −5 (50 − 55).
RECORDS = [
    baseline("real", 0, [78.0, 70.0, 50.0], [[39, 1, 10], [5, 35, 10], [20, 5, 25]]),
    baseline("synthetic", 0, [40.0, 58.0, 56.0], [[20, 20, 10], [10, 29, 11], [10, 12, 28]]),
    baseline("real", 1, [82.0, 70.0, 50.0], [[41, 4, 5], [5, 35, 10], [20, 5, 25]]),
    baseline("synthetic", 1, [40.0, 62.0, 54.0], [[20, 20, 10], [10, 31, 9], [10, 13, 27]]),
    student(16, 0, [70.0, 61.0, 50.0]),  # the best of the reading's N: recovers 30/40 of cat's gap, 1/10 of dog's
    student(16, 1, [70.0, 61.0, 50.0]),
    student(8, 0, [50.0, 60.0, 50.0]),
    student(4, 0, [90.0, 90.0, 90.0]),  # not an N the reading reports: never the per-class student
]


def test_per_class_gaps_are_means_over_seeds_sorted_by_gap():
    gaps = per_class_gaps(RECORDS)
    assert [c.name for c in gaps.classes] == ["cat", "dog", "fox"]
    assert [(c.r, c.s, c.gap) for c in gaps.classes] == [(80.0, 40.0, 40.0), (70.0, 60.0, 10.0), (50.0, 55.0, -5.0)]
    assert (gaps.seeds_r, gaps.seeds_s, gaps.student_n, gaps.student_seeds) == (2, 2, 16, 2)
    # 50 test images per class: dog's 10 pp gap is within 2 binomial standard errors (19 pp), so it has no share
    assert [c.test_images for c in gaps.classes] == [50, 50, 50]
    assert [c.recovered for c in gaps.classes] == [pytest.approx(75.0), None, None]
    reading = per_class_reading(gaps)
    assert "(means over 2 seeds each of R and S; 50 test images per class)" in reading
    assert "R beats S on cat (+40.00 pp), dog (+10.00 pp, within noise)." in reading
    assert "S beats R (a negative gap R − S) on fox (-5.00 pp, within noise)." in reading
    assert "S is at least as good as R on 1 of 3 classes." in reading
    assert "synthetic→real student at N = 16" in reading and "2 seeds)" in reading
    assert "Only cat's gap is beyond noise: real late layers recover 75% of it." in reading


def test_per_class_table_and_figure():
    gaps = per_class_gaps(RECORDS)
    lines = per_class_table_lines(gaps)
    assert lines[0] == (
        "| class | R top-1 (%) | S top-1 (%) | gap R − S (pp) | synthetic→real N = 16 (%) | gap recovered (%) |"
    )
    assert lines[2:] == [
        "| cat | 80.00 | 40.00 | +40.00 | 70.00 | 75 |",
        "| dog | 70.00 | 60.00 | +10.00 | 61.00 | – |",
        "| fox | 50.00 | 55.00 | -5.00 | 50.00 | – |",
    ]
    fig = per_class_figure(gaps)
    labels = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert labels == ["cat", "dog", "fox"]
    assert [bar.get_height() for bar in fig.axes[1].patches] == [40.0, 10.0, -5.0]


def test_many_classes_show_the_ten_largest_and_smallest_gaps():
    names = [f"c{i:02d}" for i in range(25)]
    records = [
        make_record(run="r", side="real", target=REAL, classes=names, per_class_top1=[50.0 + i for i in range(25)]),
        make_record(run="s", side="synthetic", target=SYNTH, per_class_top1=[50.0] * 25),
    ]
    gaps = per_class_gaps(records)
    assert gaps.student_n is None and class_count(records) == 25
    lines = per_class_table_lines(gaps)
    assert lines[0] == "| class | R top-1 (%) | S top-1 (%) | gap R − S (pp) |"
    rows = lines[2:]
    assert len(rows) == 21 and rows[10] == "| … 5 classes with gaps in between … | | | |"
    assert rows[0].startswith("| c24 |") and rows[9].startswith("| c15 |")
    assert rows[11].startswith("| c09 |") and rows[-1].startswith("| c00 |")
    labels = [t.get_text() for t in per_class_figure(gaps).axes[1].get_xticklabels()]
    assert labels == names[::-1]  # up to 40 classes the figure names them all
    many = [f"c{i:03d}" for i in range(100)]
    wide = [
        make_record(run="r", side="real", target=REAL, classes=many, per_class_top1=[float(i) for i in range(100)]),
        make_record(run="s", side="synthetic", target=SYNTH, per_class_top1=[0.0] * 100),
    ]
    fig = per_class_figure(per_class_gaps(wide))
    assert len(fig.axes[1].patches) == 100 and not any(t.get_text() for t in fig.axes[1].get_xticklabels())


def test_no_per_class_results_without_both_sides_or_fields():
    plain = [make_record(run="r", side="real"), make_record(run="s", side="synthetic", target=SYNTH)]
    assert per_class_gaps(plain) is None and first_seed_confusions(plain) is None and class_count(plain) is None
    assert per_class_gaps(RECORDS[:1]) is None


def test_balanced_top1_next_to_top1():
    # R's test set tilted towards its best class: its top-1 is 10 pp above its balanced top-1
    records = [
        r.model_copy(update={"top1": r.top1 + 10}) if r.side == "real" and r.kind == "baseline" else r for r in RECORDS
    ]
    text = "\n".join(gap_lines(records))
    assert "| training data | seeds | top-1 (%) on real test | balanced top-1 (%) |" in text
    assert "| cifake:real | 2 | 76.67 ± 0.94 | 66.67 ± 0.94 |" in text
    assert "| cifake:synthetic | 2 | 51.67 ± 0.47 | 51.67 ± 0.47 |" in text
    assert "**Gap R − S: 25.00 pp**" in text
    assert "Balanced gap R − S (mean per-class top-1, each class weighted equally): 15.00 pp." in text
    lines = all_runs_lines(records)
    assert lines[0].startswith("| run | top-1 | balanced top-1 | top-5 | kind |") and lines[0].endswith("| seconds |")
    assert lines[2].startswith("| baseline-real-s0 | 76.00 | 66.00 | 90.00 | baseline |")
    partly = [records[0], make_record(run="old", top1=40.0)]
    assert "| cifake:real | 2 | 58.00 ± 25.46 | 66.00 (n=1) |" in "\n".join(gap_lines(partly))
    old = [make_record(run="x", top1=40.0)]
    assert "balanced" not in all_runs_lines(old)[0] and "balanced" not in "\n".join(gap_lines(old))


def test_confusion_matrices_of_the_first_seed_both_sides_have():
    records = [RECORDS[0].model_copy(update={"confusion": None}), *RECORDS[1:4]]
    confusions = first_seed_confusions(records)
    assert confusions.seed == 1 and set(confusions.matrices) == {"R", "S"} and confusions.classes == CLASSES
    assert first_seed_confusions(RECORDS).seed == 0
    assert row_normalised([[1, 3], [0, 0]]).tolist() == [[0.25, 0.75], [0.0, 0.0]]
    fig = confusion_figure(confusions)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == CLASSES
    assert "seed 1" in fig.get_suptitle()
    many = [[int(i == j) for j in range(25)] for i in range(25)]
    only_r = first_seed_confusions([make_record(run="r", side="real", confusion=many)])
    assert set(only_r.matrices) == {"R"} and only_r.classes[0] == "class 0"
    assert not any(t.get_text() in only_r.classes for t in confusion_figure(only_r).axes[0].get_yticklabels())


def test_example_rows_prefer_the_largest_gaps():
    gaps = per_class_gaps(RECORDS)
    assert example_rows(("cat", "dog", "fox"), gaps) == ([0, 1, 2], "all 3 classes")
    assert example_rows(("fox", "dog", "cat"), gaps, limit=2)[0] == [2, 1]
    assert example_rows(("a", "b", "c"), None, limit=2) == ([0, 1], "the first 2 of 3 classes")


def write_folder(tmp_path, records, examples: bool = True):
    for r in records:
        append_result(tmp_path, r)
    if examples:
        from synthgap.experiments.examples import write_examples

        images = torch.randint(0, 256, (6, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        tensors = ImageTensors(images, torch.tensor([0, 1, 2, 0, 1, 2]), tuple(CLASSES))
        write_examples(StubStore(tensors, tensors), tmp_path, per_class=2, size=16)


def test_report_has_per_class_sections_figures_and_examples(tmp_path):
    write_folder(tmp_path, RECORDS)
    markdown = build_report(tmp_path).read_text()
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Baselines: real (R) vs synthetic (S) training data",
        "## Per-class results",
        "## Layer-wise transfer",
        "## Training images",
        "## All runs",
    ]
    for name in ("per_class", "confusion", "examples", "layer_sweep"):
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    assert "![Per-class top-1 of R and S and the gap R − S](figures/per_class.png)" in markdown
    assert "| cat | 80.00 | 40.00 | +40.00 | 70.00 | 75 |" in markdown
    assert "from the baselines of seed 0" in markdown
    assert "![Training images: real | synthetic](figures/examples.png)" in markdown
    assert "The first 2 training images of each class, in index order" in markdown and "(all 3 classes)" in markdown
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    img = '<img src="figures/examples.png" alt="Training images: real | synthetic" />'
    assert f'<a class="figure" href="figures/examples.png">{img}</a>' in html  # opens the figure full size


def test_report_without_examples_or_with_a_broken_file(tmp_path):
    write_folder(tmp_path, RECORDS, examples=False)
    assert "## Training images" not in build_report(tmp_path).read_text()
    (tmp_path / "examples.safetensors").write_bytes(b"not a safetensors file")
    markdown = build_report(tmp_path).read_text()
    assert "examples.safetensors could not be read" in markdown and not (tmp_path / "figures/examples.png").exists()


def test_classes_without_test_images_are_left_out():
    records = [
        make_record(run="r", side="real", classes=["a", "b"], per_class_top1=[50.0, None]),
        make_record(run="s", side="synthetic", target=SYNTH, per_class_top1=[40.0, None]),
    ]
    assert [(c.name, c.gap) for c in per_class_gaps(records).classes] == [("a", 10.0)]
