"""Model families other than ResNet-18: layer counts, the reading's points, figure ticks and the paper comparisons all
follow the records' `model` / `num_layers`; sides follow `side` / `source_side` only."""

import pytest

from synthgap.experiments.results import append_result
from synthgap.report.build import build_report
from synthgap.report.figures import layer_sweep_figure
from synthgap.report.layers import (
    gap_reading,
    layer_baselines,
    layer_sweep,
    layer_table_lines,
    paper_rule_n,
    recovery_ns,
)
from synthgap.report.reduction import (
    reduction_fits,
    reduction_points,
    reduction_reading,
    reduction_settings,
    reduction_table_lines,
)
from synthgap.report.tables import num_layers
from tests.report.records import make_record, transfer_record

REAL, SYNTH = "cifake:real", "cifake:synthetic"
FAMILIES = [("resnet50", 50), ("vit_tiny", 14)]


def family_records(model: str, layers: int, r: float = 80.0, s: float = 60.0) -> list:
    """Baselines R and S and a synthetic→real sweep over N = 1..L − 1 that recovers 1 − N/L of the gap."""
    family = {"model": model, "num_layers": layers}
    out = [
        make_record(run=f"{model}-R", target=REAL, side="real", top1=r, **family),
        make_record(run=f"{model}-S", target=SYNTH, side="synthetic", top1=s, **family),
    ]
    for n in range(1, layers):
        out.append(transfer_record(n, r - (r - s) * n / layers, run=f"{model}-s2r-{n}", **family))
    return out


def test_recovery_points_and_the_paper_rule_scale_with_the_layer_count():
    assert recovery_ns(18) == (8, 12, 16, 17) and paper_rule_n(18) == 12  # the paper's ResNet-18 points
    assert recovery_ns(50) == (22, 33, 48, 49) and paper_rule_n(50) == 33
    assert recovery_ns(14) == (6, 9, 12, 13) and paper_rule_n(14) == 9
    assert recovery_ns(3) == (1, 2)  # no repeats for a very shallow model


@pytest.mark.parametrize(("model", "layers"), FAMILIES)
def test_table_reading_and_figure_use_the_family_layer_count(model, layers):
    records = family_records(model, layers)
    assert num_layers(records) == layers
    sweep, baselines = layer_sweep(records), layer_baselines(records)
    lines = layer_table_lines(sweep, baselines, num_layers=layers)
    assert f"layers N+1..{layers} trained on the second" in lines[0]
    assert lines[-3].startswith(f"| {layers - 1} | ")
    reading = gap_reading(sweep, baselines, num_layers=layers)
    expected = ", ".join(f"{100 * (1 - n / layers):.0f}% at N = {n}" for n in recovery_ns(layers))
    assert f"(synthetic→real; recovered = (top-1(N) − S) / (R − S)): {expected}." in reading
    rule = paper_rule_n(layers)
    assert f"the student whose first {rule} layers come from synthetic data" in reading
    assert f"it recovers {100 * (1 - rule / layers):.0f}%, so these results do not match" in reading
    ticks = layer_sweep_figure(sweep, baselines, num_layers=layers).axes[0].get_xticks()
    assert list(ticks) == list(range(1, layers))


def test_figure_ticks_add_the_n_outside_one_to_l_minus_one():
    records = family_records("vit_tiny", 14)
    last = records[-1].model_dump()
    extra = [make_record(**{**last, "run": f"n{n}", "n_transferred": n}) for n in (0, 14)]
    sweep = layer_sweep(records + extra)
    assert list(layer_sweep_figure(sweep, {}, num_layers=14).axes[0].get_xticks()) == list(range(0, 15))


def test_report_of_a_resnet50_folder(tmp_path):
    for r in family_records("resnet50", 50):
        append_result(tmp_path, r)
    markdown = build_report(tmp_path).read_text()
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Baselines: real (R) vs synthetic (S) training data",
        "## Layer-wise transfer",
        "## All runs",
    ]
    assert "layers N+1..50 trained on the second" in markdown and "| 49 | " in markdown
    assert "56% at N = 22, 34% at N = 33, 4% at N = 48, 2% at N = 49." in markdown
    assert (tmp_path / "figures" / "layer_sweep.png").stat().st_size > 10_000


def test_a_folder_with_two_families_gets_sections_per_family(tmp_path):
    records = family_records("resnet18", 18) + family_records("resnet50", 50, r=90.0)
    for r in records:
        append_result(tmp_path, r)
    markdown = build_report(tmp_path).read_text()
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Baselines: real (R) vs synthetic (S) training data (resnet18)",
        "## Layer-wise transfer (resnet18)",
        "## Baselines: real (R) vs synthetic (S) training data (resnet50)",
        "## Layer-wise transfer (resnet50)",
        "## All runs",
    ]
    assert "a gap R − S of 20.00 pp" in markdown and "a gap R − S of 30.00 pp" in markdown  # each family's own R
    assert "layers N+1..18 trained" in markdown and "layers N+1..50 trained" in markdown
    for model in ("resnet18", "resnet50"):
        assert f"![Layer-wise transfer (Figure 2)](figures/layer_sweep-{model}.png)" in markdown
        assert (tmp_path / "figures" / f"layer_sweep-{model}.png").exists()
    assert "| run | top-1 | top-5 | kind | model | source |" in markdown
    assert "| resnet50-R | 90.00 | 90.00 | baseline | resnet50 | – |" in markdown


def test_a_sweep_never_mixes_the_layers_of_two_families():
    with pytest.raises(ValueError, match="resnet18.*resnet50"):
        layer_sweep(family_records("resnet18", 18) + family_records("resnet50", 50))
    with pytest.raises(ValueError, match=r"\[18, 50\]"):
        num_layers(family_records("resnet18", 18) + family_records("resnet50", 50))


def test_sides_come_from_the_records_not_from_data_names():
    photos, renders = "folder:/x/real_photos", "folder:/x/renders"
    records = [
        make_record(run="R", target=photos, side="real", top1=70.0),
        make_record(run="S", target=renders, side="synthetic", top1=50.0),
        make_record(run="named-real", target="cifake:real", side=None, top1=99.0),  # an old record: no side
        transfer_record(12, 65.0, run="t", source=renders, target=photos),
        make_record(  # no sides at all (an old record): its direction is unknown, so it is in no curve
            run="old", kind="layer_transfer", source=SYNTH, target=REAL, side=None, n_transferred=12, top1=1.0
        ),
    ]
    baselines = layer_baselines(records)
    assert (baselines["R"].mean, baselines["S"].mean) == (70.0, 50.0)
    sweep = layer_sweep(records)
    assert list(sweep) == ["synthetic→real"] and sweep["synthetic→real"][12].mean == 65.0
    assert "it recovers 75%" in gap_reading(sweep, baselines)


def test_records_without_a_family_count_as_resnet18():
    old = [make_record(**{**r.model_dump(), "model": None, "num_layers": None}) for r in family_records("x", 18)]
    assert num_layers(old) == 18
    reading = gap_reading(layer_sweep(old), layer_baselines(old))
    assert "at N = 8, " in reading and "at N = 17." in reading and "first 12 layers" in reading


# --- data reduction: the paper's fit is a ResNet-18, k = 16 number ---------------------------------------------------


def reduction_records(model: str, layers: int, ks: tuple[int, ...]) -> list:
    family = {"model": model, "num_layers": layers}
    out = [make_record(run="R", side="real", top1=82.0, **family)]
    for k in ks:
        for x in (1, 2, 4, 8):
            out.append(
                make_record(
                    run=f"transfer-k{k}-x{x}",
                    kind="data_reduction",
                    arm="transfer",
                    source=SYNTH,
                    source_side="synthetic",
                    n_transferred=k,
                    frozen=True,
                    x=x,
                    real_fraction=1 / x,
                    top1=80.0 - x / 2 - (layers - k) / 10,
                    **family,
                )
            )
    return out


def _reduction_texts(records):
    points, fits, settings = reduction_points(records), reduction_fits(records), reduction_settings(records)
    table = reduction_table_lines(points, fits, settings=settings)
    return table, reduction_reading(points, fits, layer_baselines(records), settings=settings)


def test_the_paper_comparison_only_for_resnet18_with_k16():
    records = reduction_records("resnet18", 18, (16,))
    table, reading = _reduction_texts(records)
    assert table[-1] == "| paper (ImageNet-100, transfer) | -2.23 | 85.61 | – | – |"
    assert "By comparison, here transfer loses" in reading
    # curves built by hand, without settings, are taken as the paper's setting: the same reading
    points, fits = reduction_points(records), reduction_fits(records)
    assert reduction_reading(points, fits, layer_baselines(records)) == reading
    for model, layers, k in (("resnet50", 50, 48), ("resnet18", 18, 12)):
        table, reading = _reduction_texts(reduction_records(model, layers, (k,)))
        assert table[-1] == "| paper (ImageNet-100, transfer, resnet18, k=16; for reference) | -2.23 | 85.61 | – | – |"
        assert "By comparison" not in reading
        assert f"the transfer arm here is a {model} with k = {k} of its {layers} layers" in reading
        assert "shown for reference only" in reading


def test_the_last_two_layers_setting_comes_first_in_any_family():
    points = reduction_points(reduction_records("resnet50", 50, (40, 48)))
    assert list(points) == ["transfer (k=48)", "transfer (k=40)"]
    settings = reduction_settings(reduction_records("resnet50", 50, (40, 48)))
    assert (settings["transfer (k=48)"].model, settings["transfer (k=48)"].k) == ("resnet50", 48)
