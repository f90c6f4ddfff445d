"""The report section and the readings shared with the command line, on hand-made analysis rows."""

import json

import pytest

from synthgap.analysis.rows import AnalysisRow, read_analysis, write_analysis
from synthgap.analysis.summary import cka_below_floor, first_from, probe_behind, spearman, summary_lines, where
from synthgap.errors import SynthgapError
from synthgap.experiments.results import append_result
from synthgap.report.analysis import analysis_lines, recovered_shares
from tests.report.records import make_record, transfer_record
from tests.test_bad_inputs import only_line, synthgap

L = 18
GAP_FROM = 14  # the planted layer from which S departs from R


def row(measure: str, layer: int, value: float, **fields) -> AnalysisRow:
    defaults = {"runs": ["baseline-real-s0"], "seeds": [0], "model_keys": ["k"], "images": {"test": 1000}}
    return AnalysisRow(
        measure=measure,
        layer=layer,
        num_layers=L,
        model="resnet18",
        value=value,
        settings={"minibatch": 256, "l2": 0.001},
        definition="d",
        **{**defaults, **fields},
    )


def planted_rows(floor: bool = True) -> list[AnalysisRow]:
    rows = []
    for n in range(1, L + 1):
        late = n >= GAP_FROM
        rows.append(row("cka", n, 0.95 - 0.01 * n - (0.4 if late else 0.0), pair="R~S"))
        if floor:
            rows += [row("cka", n, 0.9 - 0.01 * n, pair="R~R"), row("cka", n, 0.92 - 0.01 * n, pair="S~S")]
        for student, top1 in (("R", 50 + 2 * n), ("S", 50 + 2 * n - (20 if late else 0))):
            rows.append(row("probe_top1", n, top1, student=student, details={"standard_error": 1.5}))
            rows.append(row("fd", n, 1.0, student=student, details={"relative": 0.1 + 0.05 * n}))
            rows.append(row("kid", n, 0.01 * n, student=student))
            rows.append(row("precision", n, 0.9 - 0.02 * n, student=student))
            rows.append(row("recall", n, 0.8 - 0.02 * n, student=student))
            rows.append(row("kid", n, 0.5, student=student, class_name="cat"))  # per class: not in the curves
    return rows


def planted_records() -> list:
    records = [
        make_record(run="baseline-real-s0", side="real", top1=80.0),
        make_record(run="baseline-synthetic-s0", side="synthetic", target="cifake:synthetic", top1=60.0),
    ]
    for n, top1 in {0: 80.0, 2: 80.0, 6: 79.0, 10: 78.0, 14: 66.0, 16: 63.0, 17: 61.0}.items():
        records.append(transfer_record(n, top1, run=f"transfer-synthetic_to_real-n{n:02d}-s0"))
    return records


def test_spearman_ranks_with_ties():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, abs=1e-6)  # scipy.stats.spearmanr
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None


def test_first_from_and_where():
    assert first_from({1: False, 2: True, 3: True}) == (2, True)
    assert where({1: False, 2: True, 3: False}) == "first at layer 2 (not at every later layer)"
    assert where({1: False, 2: False}) == ""


def test_readings_find_the_planted_layer():
    rows = planted_rows()
    assert first_from(probe_behind(rows)) == (GAP_FROM, True)
    assert first_from(cka_below_floor(rows)) == (GAP_FROM, True)
    assert cka_below_floor(planted_rows(floor=False)) is None
    text = "\n".join(summary_lines(rows))
    assert f"The S-probe falls behind the R-probe from layer {GAP_FROM} on." in text
    assert f"below the noise floor from layer {GAP_FROM} on" in text


def test_recovered_share_of_the_sweep():
    shares = recovered_shares(planted_records())
    assert shares[2] == pytest.approx(100.0) and shares[14] == pytest.approx(30.0)
    assert recovered_shares(planted_records()[:2]) == {}


def test_report_section_compares_the_diagnostics_with_the_sweep(tmp_path):
    write_analysis(tmp_path, planted_rows())
    lines = analysis_lines(planted_records(), read_analysis(tmp_path), tmp_path)
    text = "\n".join(lines)
    assert "## Per-layer diagnostics of R and S (resnet18)" in text
    for figure in ("analysis_cka.png", "analysis_probes.png", "analysis_domain_gap.png"):
        assert f"figures/{figure}" in text and (tmp_path / "figures" / figure).stat().st_size > 0
    table = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert "| CKA(R, S) | +1.00 | 6 | + | yes |" in text  # falls with N exactly as the recovered share does
    assert table["FD / tr Σ_real on R's features"].split("|")[2].strip() == "-1.00"
    assert "At the sweep's N (2, 6, 10, 14, 16, 17): the sweep recovers less than 50% of the gap from N = 14 on" in text
    assert "the linear probes (S-probe behind) would have named N = 14 on, the same layer as the sweep" in text
    assert "CKA (below the seed noise floor) would have named N = 14 on, the same layer as the sweep" in text
    assert "FID" not in text.replace("not FID", "")


def test_a_sweep_without_a_gap_is_named(tmp_path):
    records = planted_records()
    records[1] = make_record(run="baseline-synthetic-s0", side="synthetic", target="cifake:synthetic", top1=85.0)
    text = "\n".join(analysis_lines(records, planted_rows(), tmp_path))
    assert "holds a synthetic→real layer sweep, but S is not below R (R 80.00%, S 85.00%)" in text


def test_report_section_is_empty_without_rows_and_without_a_sweep_has_no_comparison(tmp_path):
    assert analysis_lines(planted_records(), [], tmp_path) == []
    lines = analysis_lines(planted_records()[:2], planted_rows(floor=False), tmp_path)
    text = "\n".join(lines)
    assert "Spearman" not in text and "no seed noise floor" in text


def damage_line(path, number: int, **fields) -> None:
    """Rewrite line `number` (from 1) of a JSON-lines file with `fields` changed: still JSON, the wrong shape."""
    lines = path.read_text().splitlines()
    lines[number - 1] = json.dumps({**json.loads(lines[number - 1]), **fields})
    path.write_text("\n".join(lines) + "\n")


def test_a_row_of_the_wrong_shape_names_the_file_and_its_line(tmp_path):
    path = write_analysis(tmp_path, planted_rows()[:5])
    damage_line(path, 4, value="x")
    with pytest.raises(SynthgapError) as caught:
        read_analysis(tmp_path)
    assert str(caught.value).startswith(f"{path}, line 4: value: expected a number, got")


def test_report_on_an_analysis_file_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    for record in planted_records():
        append_result(tmp_path, record)
    path = write_analysis(tmp_path, planted_rows())
    damage_line(path, 3, value="x")
    code, _, err = synthgap(capsys, "report", tmp_path)
    assert code == 2
    assert only_line(err).startswith(f"synthgap: error: {path}, line 3: value: expected a number, got")
