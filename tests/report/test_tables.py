import pytest
from pydantic import ValidationError

from synthgap.errors import SynthgapError
from synthgap.experiments.results import ResultRecord, append_result, finished_runs, read_results
from synthgap.report.build import build_report
from synthgap.report.tables import gap_lines, summarize
from tests.report.records import make_record

RECORDS = [
    make_record(run="r0", target="cifake:real", side="real", seed=0, top1=80.0),
    make_record(run="s0", target="cifake:synthetic", side="synthetic", seed=0, top1=60.0),
    make_record(run="r1", target="cifake:real", side="real", seed=1, top1=82.0),
    make_record(run="s1", target="cifake:synthetic", side="synthetic", seed=1, top1=61.0),
]


def test_summary_mean_and_sample_std():
    s = summarize([80.0, 82.0])
    assert (s.mean, s.n) == (81.0, 2)
    assert s.std == pytest.approx(1.41421, rel=1e-4)
    assert str(summarize([5.0])) == "5.00"


def test_gap_table_reports_r_minus_s_over_seeds():
    text = "\n".join(gap_lines(RECORDS))
    assert "| cifake:real | 2 | 81.00 ± 1.41 |" in text
    assert "| cifake:synthetic | 2 | 60.50 ± 0.71 |" in text
    assert "Gap R − S: 20.50 pp" in text
    assert "per-seed gaps 20.50 ± 0.71" in text


def test_no_gap_line_without_both_sides():
    text = "\n".join(gap_lines(RECORDS[:1]))
    assert "cifake:real" in text and "Gap" not in text


def test_results_contract_fields_are_required():
    with pytest.raises(ValidationError):
        ResultRecord(run="x", kind="baseline", source=None, target="t")
    with pytest.raises(SynthgapError, match="unknown kind 'something_else'"):
        make_record(kind="something_else")


def test_report_files_from_results_only(tmp_path):
    for r in RECORDS:
        append_result(tmp_path, r)
    assert finished_runs(tmp_path) == {"r0", "s0", "r1", "s1"}
    assert [r.run for r in read_results(tmp_path)] == ["r0", "s0", "r1", "s1"]
    build_report(tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "Gap R − S: 20.50 pp" in markdown
    assert "<table>" in html and "<strong>Gap R − S: 20.50 pp</strong>" in html


def test_sides_come_from_the_recorded_side_only():
    photos, renders = "folder:/x/real_photos", "folder:/x/renders"
    records = [
        make_record(run="r", target=photos, side="real", top1=70.0),
        make_record(run="s", target=renders, side="synthetic", top1=40.0),
    ]
    assert "Gap R − S: 30.00 pp" in "\n".join(gap_lines(records))
    # names that look like a side decide nothing: without `side` (records of old versions) there is no R or S
    unsided = [make_record(**{**r.model_dump(), "side": None}) for r in RECORDS]
    named = [make_record(run="r", target="x:real", side=None), make_record(run="s", target="generated:/g", side=None)]
    for records in (unsided, named):
        text = "\n".join(gap_lines(records))
        assert "| training data |" in text and "Gap" not in text
