"""What the report writes beside report.md: the HTML pages (a standalone one with its figures inside), the staged
figures folder, and the figures' colours, labels and notes on error bars; the per-class sentences by sign."""

from __future__ import annotations

import base64

import pytest
from matplotlib.figure import Figure

from synthgap.report import ablations, baselines
from synthgap.report.analysis import legend_entries
from synthgap.report.build import STANDALONE_FILE, build_report, staged_folder
from synthgap.report.class_figures import confusion_figure, per_class_figure
from synthgap.report.classes import ClassGap, PerClassGaps, first_seed_confusions, per_class_gaps, per_class_reading
from synthgap.report.figures import layer_sweep_figure
from synthgap.report.palette import R_COLOR, S_COLOR, spread_note
from synthgap.report.sections import Scope
from synthgap.report.tables import Summary
from tests.report.test_ablation_report import results
from tests.report.test_per_class import RECORDS, write_folder


def test_standalone_html_holds_every_figure_as_a_data_uri(tmp_path):
    write_folder(tmp_path, RECORDS)
    build_report(tmp_path)
    page = (tmp_path / STANDALONE_FILE).read_text(encoding="utf-8")
    figures = sorted((tmp_path / "figures").glob("*.png"))
    assert len(figures) == 4
    assert 'src="figures/' not in page and page.count('src="data:image/png;base64,') == len(figures)
    for figure in figures:
        assert base64.b64encode(figure.read_bytes()).decode("ascii") in page
    linked = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert linked.count('<a class="figure" href="figures/') == len(figures) and "data:image" not in linked


def _figure_names(tmp_path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (tmp_path / "figures").iterdir()}


def test_a_failing_figure_leaves_the_old_figures_and_no_staging_folder(tmp_path, monkeypatch):
    write_folder(tmp_path, RECORDS)
    build_report(tmp_path)
    before = _figure_names(tmp_path)
    report = (tmp_path / "report.md").read_text()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(baselines, "plot_confusions", broken)  # the per_class figure is drawn already by then
    with pytest.raises(OSError) as raised:
        build_report(tmp_path)
    assert raised.value.filename == str(tmp_path / "figures")  # the error line names a path
    assert _figure_names(tmp_path) == before and (tmp_path / "report.md").read_text() == report
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_staged_folder_replaces_the_target_only_when_the_block_ends(tmp_path):
    target = tmp_path / "figures"
    target.mkdir()
    (target / "old.png").write_bytes(b"old")
    with pytest.raises(ValueError), staged_folder(target) as staging:
        (staging / "new.png").write_bytes(b"new")
        raise ValueError("a figure failed")
    assert [p.name for p in tmp_path.iterdir()] == ["figures"] and (target / "old.png").read_bytes() == b"old"
    with staged_folder(target) as staging:
        (staging / "new.png").write_bytes(b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["figures"] and [p.name for p in target.iterdir()] == ["new.png"]


def test_confusion_colour_bar_is_in_percent_and_the_gap_axis_is_named():
    fig = confusion_figure(first_seed_confusions(RECORDS))
    bar = fig.axes[-1]
    assert bar.get_ylabel() == "% of the class's test images" and bar.get_ylim() == (0.0, 100.0)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "78" in texts or "82" in texts or "80" in texts  # cells in %, as the bar
    per_class = per_class_figure(per_class_gaps(RECORDS))
    assert per_class.axes[1].get_ylabel() == "gap R − S (pp)"
    colors = {c.get_label(): c.get_facecolor()[0] for c in per_class.axes[0].collections if c.get_label()[0] in "RS"}
    assert [_hex(v) for v in colors.values()] == [R_COLOR.lower(), S_COLOR.lower()]


def _hex(rgba) -> str:
    return "#" + "".join(f"{round(255 * v):02x}" for v in rgba[:3])


def test_layer_sweep_says_what_its_bars_and_bands_are():
    sweep = {"synthetic→real": {4: Summary(41.0, 0.8, 3), 8: Summary(40.5, 1.0, 3)}}
    baselines = {"R": Summary(40.0, 0.5, 3), "S": Summary(30.0, 0.7, 3)}
    fig = layer_sweep_figure(sweep, baselines)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "error bars and shaded bands: ±1 std over 3 seeds" in labels
    assert spread_note([Summary(1, 0, 2), Summary(1, 0, 3)]) == "error bars: ±1 std over 2–3 seeds"
    assert spread_note([Summary(1, 0, 1)]) == "1 seed each: no error bars"


def test_grouped_bars_and_texture_legend_use_readable_labels(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(ablations, "plot_grouped_bars", lambda groups, path, **kw: drawn.setdefault(path.stem, groups))
    ablations.texture_lines(results(), Scope(tmp_path))
    series = {name for bars in drawn["ablation_texture"].values() for name in bars}
    assert series <= {"clean", "grayscale + blur", "edge map", "patch shuffle"} and "grayscale + blur" in series


def test_legend_rows_that_look_alike_are_shown_once():
    fig = Figure()
    top, bottom = fig.subplots(2, 1)
    top.plot([1, 2], [1, 2], color=R_COLOR, label="in R's features")
    bottom.plot([1, 2], [1, 2], color=R_COLOR, label="precision, R's features")  # same look: one row
    bottom.plot([1, 2], [2, 1], color=R_COLOR, linestyle="--", label="recall (dashed), in R's features")
    assert legend_entries(fig)[1] == ["in R's features", "recall (dashed), in R's features"]


def _gaps(*classes: ClassGap, student_n: int | None = None, seeds: int = 1) -> PerClassGaps:
    ordered = sorted(classes, key=lambda c: -c.gap)
    return PerClassGaps(ordered, seeds_r=seeds, seeds_s=seeds, student_n=student_n, student_seeds=seeds)


def test_per_class_sentences_follow_the_sign_of_the_gap():
    # bird: S far better (a negative gap), never listed among the classes R beats S on
    gaps = _gaps(ClassGap("frog", 60.0, 20.0, test_images=500), ClassGap("bird", 20.0, 50.0, test_images=500))
    reading = per_class_reading(gaps)
    assert "(1 seed each of R and S; 500 test images per class)" in reading
    assert "R beats S on frog (+40.00 pp)." in reading
    assert "S beats R (a negative gap R − S) on bird (-30.00 pp)." in reading
    assert "lose" not in reading and "least on" not in reading
    flipped = _gaps(ClassGap("frog", 20.0, 60.0, test_images=500), ClassGap("bird", 50.0, 20.0, test_images=500))
    reading = per_class_reading(flipped)
    assert "R beats S on bird (+30.00 pp)." in reading and "on frog (-40.00 pp)." in reading
    only_r = per_class_reading(_gaps(ClassGap("a", 60.0, 20.0), ClassGap("b", 50.0, 20.0)))
    assert "S beats R on no class." in only_r and "test images per class not recorded" in only_r


def test_a_share_of_a_gap_within_noise_is_not_named():
    # deer: a 2 pp gap on 100 test images is far inside 2 binomial standard errors (about 14 pp); its 162 % is noise
    deer = ClassGap("deer", 40.0, 38.0, student=41.24, test_images=100)
    frog = ClassGap("frog", 70.0, 20.0, student=45.0, test_images=100)
    assert deer.recovered is None and frog.recovered == pytest.approx(50.0)
    reading = per_class_reading(_gaps(deer, frog, student_n=8))
    assert "deer (+2.00 pp, within noise)" in reading and "162" not in reading
    assert "1 seed)" in reading and "Only frog's gap is beyond noise: real late layers recover 50% of it." in reading
    assert "No class's gap R − S is beyond noise" in per_class_reading(_gaps(deer, student_n=8))
