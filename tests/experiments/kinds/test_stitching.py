"""Model stitching as a kind: the block's checks (when the spec is read, and by --dry-run and run alike), the plan's
names, cuts and the baselines it needs, and a tiny end-to-end run with its records and report section."""

from __future__ import annotations

import pytest

from synthgap.errors import SynthgapError
from synthgap.experiments.kinds.stitching import StitchRecord, StitchRun
from synthgap.experiments.plan import plan
from synthgap.experiments.runner import run_experiment
from synthgap.experiments.runs import BaselineRun
from synthgap.report.build import build_report
from tests.specs import TINY_MODEL, tiny_spec


def block(**changes) -> dict:
    return {"kind": "stitching", **changes}


# --- the block ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n": [0, 2]}, r"experiments\.0\.stitching\.n: a stitch needs N >= 1, got \[0\]"),
        ({"n": []}, r"stitching\.n: n must name at least one cut \(leave it out for every cut\)"),
        (
            {"n": [2, 18]},
            r"experiments\.0: stitching n \(resnet18 has 18 layers; a stitch needs a layer after\): "
            r"N must be in 1\.\.17, got \[18\]",
        ),
        ({"givers": []}, r"stitching\.givers: givers must name each of synthetic, real, real_other at most once"),
        ({"givers": ["real", "synthetic", "real"]}, r"stitching\.givers: givers must name each of .* at most once"),
        ({"givers": ["realother"]}, r"stitching\.givers\.0: unknown value 'realother'"),
        ({"epochs": 0}, r"stitching\.epochs: must be at least 1, got 0"),
        ({"seeds": []}, r"stitching\.seeds: must not be empty"),
    ],
)
def test_bad_settings_fail_when_the_spec_is_read(changes, message):
    with pytest.raises(SynthgapError, match=message):
        tiny_spec(None, [block(**changes)])


def test_a_vit_is_checked_against_its_own_layer_count():
    vit = {**TINY_MODEL, "name": "vit_tiny"}
    assert tiny_spec(None, [block(n=[13])], model=vit).experiments[0].n == [13]
    with pytest.raises(SynthgapError, match=r"stitching n \(vit_tiny has 14 layers.*got \[14\]"):
        tiny_spec(None, [block(n=[14])], model=vit)


def test_a_cut_beyond_the_model_is_refused_by_dry_run_and_run(cifake_root, tmp_path, capsys):
    from tests.test_bad_inputs import assert_run_and_dry_run_reject, write_spec

    spec = write_spec(tmp_path, cifake_root, {"experiments": [block(n=[18])]})
    expected = (
        f"{spec}: experiments.0: stitching n (resnet18 has 18 layers; a stitch needs a layer after): "
        "N must be in 1..17, got [18]"
    )
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", expected)


# --- the plan -------------------------------------------------------------------------------------------------------


def test_the_default_cuts_are_every_layer_but_the_last_for_every_giver():
    spec = tiny_spec(None, [block()])
    assert spec.experiments[0].n == list(range(1, 18))
    runs = plan(spec)
    stitches = [r for r in runs if isinstance(r, StitchRun)]
    names = [r.name for r in stitches]
    assert len(stitches) == 17 * 3 and len(set(names)) == len(names)
    assert {r.n for r in stitches} == set(range(1, 18))
    assert "stitch-synthetic-n01-s0-e4" in names and "stitch-real_other-n17-s0-e4" in names
    other = next(r for r in stitches if r.name == "stitch-real_other-n05-s0-e4")
    assert (other.giver, other.n, other.seed, other.epochs, other.giver_seed) == ("real_other", 5, 0, 4, 1)


def test_the_default_cuts_of_a_vit():
    spec = tiny_spec(None, [block(givers=["synthetic"])], model={**TINY_MODEL, "name": "vit_tiny"})
    assert [r.n for r in plan(spec) if isinstance(r, StitchRun)] == list(range(1, 14))


def test_the_plan_adds_the_baselines_each_giver_needs_before_the_stitches():
    spec = tiny_spec(None, [block(n=[3], epochs=2)], seeds=[0, 2])
    runs = plan(spec)
    names = [r.name for r in runs]
    baselines = {r.name for r in runs if isinstance(r, BaselineRun)}
    # the receiver R and the giver S of each seed, and the other R (seed + 1) of the real_other control
    assert baselines == {f"baseline-{side}-s{seed}" for side in ("real", "synthetic") for seed in (0, 2)} | {
        "baseline-real-s1",
        "baseline-real-s3",
    }
    for run in runs:
        for need in run.needs():
            assert names.index(need.name) < names.index(run.name)
    other = next(r for r in runs if r.name == "stitch-real_other-n03-s2-e2")
    assert [b.name for b in other.needs()] == ["baseline-real-s2", "baseline-real-s3"]
    own = next(r for r in runs if r.name == "stitch-real-n03-s0-e2")
    assert [b.name for b in own.needs()] == ["baseline-real-s0"]  # the self-stitch needs only the receiver


def test_only_the_baselines_of_the_named_givers_are_planned():
    runs = plan(tiny_spec(None, [block(n=[3], givers=["real"])]))
    assert [r.name for r in runs] == ["baseline-real-s0", "stitch-real-n03-s0-e4"]


def test_a_stitch_reads_its_givers_side_and_trains_on_real(cifake_root):
    spec = tiny_spec(cifake_root, [block(n=[3])])
    synthetic = StitchRun("s", 0, "synthetic", 3).data_used(spec)
    other = StitchRun("o", 0, "real_other", 3).data_used(spec)
    assert {k: u.ref for k, u in synthetic.items()} == {"source": "cifake:synthetic", "train": "cifake:real"}
    assert {k: u.ref for k, u in other.items()} == {"source": "cifake:real", "train": "cifake:real"}


# --- end to end -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_stitching_experiment_writes_records_and_its_report_section(cifake_root, tmp_path):
    spec = tiny_spec(cifake_root, [block(n=[2, 17], epochs=1)])
    records = run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "cache", progress=False)
    assert {r.run for r in records if r.kind == "baseline"} == {
        "baseline-real-s0",
        "baseline-synthetic-s0",
        "baseline-real-s1",
    }
    stitches = {r.run: r for r in records if r.kind == "stitching"}
    assert all(isinstance(r, StitchRecord) for r in stitches.values())
    assert sorted(stitches) == sorted(
        f"stitch-{giver}-n{n:02d}-s0-e1" for giver in ("synthetic", "real", "real_other") for n in (2, 17)
    )
    sides = {
        "synthetic": ("synthetic", "cifake:synthetic", 0),
        "real": ("real", "cifake:real", 0),
        "real_other": ("real", "cifake:real", 1),
    }
    for record in stitches.values():
        assert (record.source_side, record.source, record.giver_seed) == sides[record.giver]
        assert (record.side, record.target, record.seed, record.epochs) == ("real", "cifake:real", 0, 1)
        assert record.frozen is True and record.n_transferred in (2, 17)
        assert record.start_top1 is not None and 0 <= record.start_top1 <= 100
        assert record.train_images == 20 and 0 <= record.top1 <= 100
    # inside layer1.0: two 8-channel maps, each BatchNorm (16) + 1×1 conv (72); after layer4: one of 64 channels
    assert {r.n_transferred: r.stitch_parameters for r in stitches.values()} == {2: 2 * 88, 17: 2 * 64 + 64 * 65}
    report = build_report(tmp_path / "out").read_text()
    assert "## Model stitching" in report
    header = "| N | S → R top-1 (penalty) | R → R (self) top-1 (penalty) | R' → R (other seed) top-1 (penalty) |"
    assert header in report
    assert "At its least-squares start the self-stitch reads" in report
    assert (tmp_path / "out" / "figures" / "stitching.png").stat().st_size > 0
