"""`synthgap report A B --out C`: the parts of a study run as separate specs in one report, each run once; two
students under one name are refused, and the joined report never lands in an experiment folder."""

from __future__ import annotations

import pytest

from synthgap import api
from synthgap.errors import SynthgapError
from synthgap.experiments.results import RESULTS_FILE, append_result
from synthgap.report.build import JOINED_FILE
from tests.report.test_stitching import BASELINES, R_TOP1, stitch, sweep


def write(folder, records) -> None:
    for record in records:
        append_result(folder, record)


@pytest.fixture
def parts(tmp_path):
    """A layer sweep and a stitching study over the same two seeds' baselines (same fingerprints), apart."""
    printed = [b.model_copy(update={"fingerprint": f"fp-{b.run}"}) for b in BASELINES]
    layers, stitching = tmp_path / "layers", tmp_path / "stitching"
    write(layers, [*printed, *(sweep(n, seed, R_TOP1[seed] - 10.0 + n) for seed in (0, 1) for n in (2, 9))])
    givers = {"synthetic": {2: 1.0, 9: 5.0}, "real": {2: 0.0, 9: 0.5}, "real_other": {2: 0.5, 9: 1.0}}
    stitches = [
        stitch(g, n, seed, R_TOP1[seed] - p) for seed in (0, 1) for g, curve in givers.items() for n, p in curve.items()
    ]
    write(stitching, [*printed, *stitches])
    return layers, stitching


def test_two_folders_make_one_report_with_the_sweep_beside_the_stitching(parts, tmp_path):
    layers, stitching = parts
    report = api.report(layers, stitching, out=tmp_path / "study")
    markdown = report.read_text()
    assert report == tmp_path / "study" / "report.md"
    assert "20 finished runs." in markdown  # 4 baselines once, 4 sweep runs, 12 stitches
    assert f"- `{layers}`: 8 runs" in markdown
    assert (
        f"- `{stitching}`: 12 runs; 4 more already in an earlier folder with the same settings, taken once" in markdown
    )
    assert "## Layer-wise transfer" in markdown and "## Model stitching" in markdown
    stitching_section = markdown[markdown.index("## Model stitching") :]
    # the stitching table carries the other folder's sweep (60 % of the gap recovered at N = 2, 95 % at N = 9)
    assert "| S excess penalty | sweep: gap recovered |" in stitching_section
    assert "| +0.50 | 60 % |" in stitching_section and "| +4.00 | 95 % |" in stitching_section
    assert (tmp_path / "study" / "figures" / "stitching.png").is_file()
    assert (tmp_path / "study" / JOINED_FILE).read_text().splitlines() == [str(layers), str(stitching)]
    assert not (tmp_path / "study" / RESULTS_FILE).exists()  # a report, not an experiment folder
    assert not (layers / "report.md").exists() and not (stitching / "report.md").exists()


def test_one_name_with_other_settings_in_two_folders_is_refused(parts):
    layers, stitching = parts
    other = next(r for r in BASELINES if r.run == "baseline-real-s0").model_copy(update={"fingerprint": "fp-other"})
    append_result(stitching.parent / "other", other)
    with pytest.raises(SynthgapError, match=r"baseline-real-s0 is in .*layers and in .*other with other settings"):
        api.report(layers, stitching.parent / "other", out=stitching.parent / "joined")
    assert not (stitching.parent / "joined").exists()


def test_where_a_joined_report_may_not_go(parts, tmp_path):
    layers, stitching = parts
    with pytest.raises(SynthgapError, match="a report of 2 folders needs --out DIR"):
        api.report(layers, stitching)
    with pytest.raises(SynthgapError, match="is, or lies in, the joined folder"):
        api.report(layers, stitching, out=layers)
    with pytest.raises(SynthgapError, match="is an experiment folder"):
        api.report(layers, out=stitching)
    with pytest.raises(SynthgapError, match="no results.jsonl in"):
        api.report(layers, tmp_path / "nothing", out=tmp_path / "joined")
    with pytest.raises(SynthgapError, match="lies in, the joined folder"):  # `synthgap report` of it would replace it
        api.report(layers, stitching, out=layers / "figures")
    with pytest.raises(SynthgapError, match="is given twice"):
        api.report(layers, stitching, layers.parent / "." / layers.name, out=tmp_path / "joined")
    assert not (tmp_path / "joined").exists()


def test_a_run_without_a_fingerprint_in_two_folders_cannot_be_told_apart(parts):
    layers, stitching = parts
    old = next(r for r in BASELINES if r.run == "baseline-real-s0")  # fingerprint None: an older synthgap's record
    append_result(stitching.parent / "old", old)
    with pytest.raises(SynthgapError, match="without a settings fingerprint .* whether it is one student cannot be"):
        api.report(layers, stitching.parent / "old", out=stitching.parent / "joined")


def test_the_command_joins_and_refuses_in_one_line(parts, tmp_path, capsys):
    from tests.test_bad_inputs import only_line, synthgap

    layers, stitching = parts
    code, out, _ = synthgap(capsys, "report", layers, "--join", stitching, "--out", tmp_path / "j")
    assert code == 0 and f"wrote {tmp_path / 'j' / 'report.md'}" in out
    code, _, err = synthgap(capsys, "report", layers, "--join", stitching)
    assert code == 2 and "needs --out DIR" in only_line(err)
