"""Run identity: a run is skipped only when its name and its settings fingerprint match the record; a changed
setting is one clear error naming it (or, asked for, the old record is superseded), never an old number."""

import json

import pytest
import yaml

from synthgap.config import validate
from synthgap.errors import SynthgapError
from synthgap.experiments import backends as backends_module
from synthgap.experiments.execute import RECORD_FILE
from synthgap.experiments.identity import changed_settings, flatten
from synthgap.experiments.plan import plan
from synthgap.experiments.results import RESULTS_FILE, SUPERSEDED_FILE, read_results
from synthgap.experiments.runner import run_experiment
from synthgap.experiments.single import TrainRunConfig, run_baseline
from synthgap.experiments.spec import ExperimentSpec
from synthgap.io import read_jsonl
from tests.specs import TINY_MODEL, TINY_RECIPE, tiny_spec

EXPERIMENTS = [
    {"kind": "baseline", "sides": ["synthetic"]},
    {"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": [16], "augmentation": "none"},
]


def train_config(train: str, data_root=None, **changes) -> TrainRunConfig:
    data = {"train": train, "test": "cifake:real", "data_root": str(data_root), "per_class": 2}
    raw = {"data": data, "model": TINY_MODEL, "recipe": TINY_RECIPE}
    for key, value in changes.items():
        section, _, field = key.partition(".")
        raw[section] = {**raw[section], field: value}
    return validate(TrainRunConfig, raw)


CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture
def real_folders(tmp_path, write_jpeg):
    """Two different ImageFolder trees that are both called `real` (the basename a default run name is made of)."""
    folders = tmp_path / "a" / "x" / "real", tmp_path / "b" / "real"
    for offset, folder in enumerate(folders):
        for label, name in enumerate(CIFAR10):
            (folder / name).mkdir(parents=True)
            for i in range(3):
                write_jpeg(folder / name / f"{i}.jpg", seed=100 * offset + 10 * label + i)
    return folders


def test_train_refuses_a_same_named_run_on_other_data(cifake_root, real_folders, tmp_path):
    a, b = real_folders
    first = train_config(f"folder:{a}", cifake_root)
    second = train_config(f"folder:{b}", cifake_root)
    assert first.run_name() == second.run_name() == "baseline-real-s0"  # the trap: the same default name
    out = tmp_path / "out"
    recorded = run_baseline(first, out / first.run_name(), out, progress=False)
    with pytest.raises(SynthgapError, match=r"baseline-real-s0 is already recorded .* other settings") as error:
        run_baseline(second, out / second.run_name(), out, progress=False)
    assert f"data.train folder:{a}" in str(error.value) or "/a/x/real →" in str(error.value)
    assert "images.train.files" in str(error.value)  # the file lists differ too
    assert [r.fingerprint for r in read_results(out)] == [recorded.fingerprint]


@pytest.mark.parametrize(
    ("change", "named"), [("data.per_class", "data.per_class 2 → 3"), ("recipe.epochs", "recipe.epochs 1 → 2")]
)
def test_train_names_the_changed_setting_and_reruns_only_when_asked(cifake_root, tmp_path, change, named, monkeypatch):
    out = tmp_path / "out"
    config = train_config("cifake:real", cifake_root)
    original = run_baseline(config, out / config.run_name(), out, progress=False)
    # identical settings: the recorded result, nothing trained (undone alone: `undo()` would also drop the test's
    # own cache folder, and the runs below would write into the user's)
    with monkeypatch.context() as patched:
        patched.setattr("synthgap.experiments.single._train", lambda *a, **k: pytest.fail("trained again"))
        assert run_baseline(config, out / config.run_name(), out, progress=False) == original
    changed = train_config("cifake:real", cifake_root, **{change: 3 if change == "data.per_class" else 2})
    with pytest.raises(SynthgapError, match=named):
        run_baseline(changed, out / changed.run_name(), out, progress=False)
    new = run_baseline(changed, out / changed.run_name(), out, progress=False, rerun_changed=True)
    records = read_results(out)
    assert [r.fingerprint for r in records] == [new.fingerprint] != [original.fingerprint]
    assert [r["fingerprint"] for r in read_jsonl(out / SUPERSEDED_FILE)] == [original.fingerprint]


def test_train_cli_stops_with_one_line_on_changed_settings(cifake_root, tmp_path):
    from typer.testing import CliRunner

    from synthgap.cli import app

    args = [
        "train",
        "--train-data",
        "cifake:real",
        "--data-root",
        str(cifake_root),
        "--per-class",
        "2",
        "--epochs",
        "1",
        "--width",
        "0.125",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    ]
    cli = CliRunner()
    assert cli.invoke(app, args).exit_code == 0
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "baseline-real-s0: top-1" in again.output
    changed = cli.invoke(app, [*args, "--epochs", "2"])
    assert isinstance(changed.exception, SynthgapError) and "recipe.epochs 1 → 2" in str(changed.exception)


@pytest.mark.parametrize(
    ("change", "named"),
    [({"per_class": 3}, "data.train.per_class 2 → 3"), ({"recipe": {"epochs": 2}}, "recipe.epochs 1 → 2")],
)
def test_run_refuses_changed_settings_and_keeps_the_folder_consistent(
    cifake_root, tmp_path, model_cache, change, named
):
    out = tmp_path / "out"
    first = run_experiment(tiny_spec(cifake_root, EXPERIMENTS), out, model_cache=model_cache, progress=False)
    spec_text = (out / "spec.yaml").read_text()
    changed = tiny_spec(cifake_root, EXPERIMENTS, **change)
    with pytest.raises(SynthgapError, match=f"2 recorded run.* other settings, e.g. baseline-synthetic-s0: {named}"):
        run_experiment(changed, out, model_cache=model_cache, progress=False)
    assert (out / "spec.yaml").read_text() == spec_text  # still describes the records beside it
    assert [r.fingerprint for r in read_results(out)] == [r.fingerprint for r in first]

    rerun = run_experiment(changed, out, model_cache=model_cache, progress=False, rerun_changed=True)
    assert [r.run for r in rerun] == [r.run for r in first]  # each run once, with its new settings
    assert all(a.fingerprint != b.fingerprint for a, b in zip(rerun, first, strict=True))
    assert yaml.safe_load((out / "spec.yaml").read_text()) == changed.model_dump(mode="json")
    assert {r["fingerprint"] for r in read_jsonl(out / SUPERSEDED_FILE)} == {r.fingerprint for r in first}
    assert not (out / "runs" / "baseline-synthetic-s0" / "summary.csv").read_text().count("\n") == 0


def test_run_with_the_same_settings_skips_and_a_narrower_spec_is_refused(
    cifake_root, tmp_path, model_cache, monkeypatch
):
    out = tmp_path / "out"
    spec = tiny_spec(cifake_root, EXPERIMENTS)
    first = run_experiment(spec, out, model_cache=model_cache, progress=False)
    monkeypatch.setattr(backends_module, "execute_run", lambda *a, **k: pytest.fail("a finished run ran again"))
    assert run_experiment(spec, out, model_cache=model_cache, progress=False) == first
    narrower = validate(ExperimentSpec, {**spec.model_dump(mode="json"), "experiments": EXPERIMENTS[:1]})
    with pytest.raises(SynthgapError, match="1 recorded run.* not part of this spec, e.g. transfer-synthetic_to_real"):
        run_experiment(narrower, out, model_cache=model_cache, progress=False)


def test_a_run_recorded_in_its_folder_but_not_appended_is_appended_without_running(
    cifake_root, tmp_path, model_cache, monkeypatch
):
    """A kill between the executor's record and the driver's append loses nothing and runs nothing twice."""
    out = tmp_path / "out"
    spec = tiny_spec(cifake_root, EXPERIMENTS)
    first = run_experiment(spec, out, model_cache=model_cache, progress=False)
    lines = (out / RESULTS_FILE).read_text().splitlines()
    (out / RESULTS_FILE).write_text(lines[0] + "\n")  # the transfer's record exists only in its run folder
    transfer = plan(spec)[-1]
    assert json.loads((out / "runs" / transfer.name / RECORD_FILE).read_text())["fingerprint"] == first[-1].fingerprint
    monkeypatch.setattr(backends_module, "execute_run", lambda *a, **k: pytest.fail("ran again"))
    assert run_experiment(spec, out, model_cache=model_cache, progress=False) == first


def test_changed_settings_are_listed_leaf_by_leaf():
    old = {"recipe": {"epochs": 4, "lr": 0.1}, "data": {"train": {"ref": "folder:/" + "a" * 70 + "/real"}}}
    new = {"recipe": {"epochs": 3, "lr": 0.1}, "data": {"train": {"ref": "folder:/" + "a" * 70 + "/fake"}}}
    assert flatten(old) == {"recipe.epochs": 4, "recipe.lr": 0.1, "data.train.ref": old["data"]["train"]["ref"]}
    tail = "a" * 34
    assert changed_settings(old, new) == (
        f"data.train.ref folder:/{'a' * 12}…{tail}/real → folder:/{'a' * 12}…{tail}/fake, recipe.epochs 4 → 3"
    )


def test_per_class_forms_up_to_balanced_and_matched(cifake_root, tmp_path, write_jpeg):
    """Imbalanced user data: {max: N} keeps smaller classes whole, balanced takes the most every class of a side has,
    matched the most both sides have."""
    from synthgap.experiments.checks import open_spec_sources
    from synthgap.experiments.store import DataStore

    synthetic = tmp_path / "generated-few"
    for label, name in enumerate(CIFAR10):
        (synthetic / name).mkdir(parents=True)
        for i in range(1 if name == "cat" else 2):  # cat has 1 image, every other class 2
            write_jpeg(synthetic / name / f"{i}.jpg", seed=500 + 10 * label + i)

    def store(per_class) -> DataStore:
        data = {"data_root": str(cifake_root), "synthetic": f"folder:{synthetic}", "per_class": per_class}
        spec = tiny_spec(cifake_root, EXPERIMENTS, data=data)
        data_store = DataStore(spec, progress=False)
        open_spec_sources(spec, data_store)  # what --dry-run checks: none of these forms is short of images
        return data_store

    capped = store({"max": 2})
    assert len(capped.train("real")) == 20 and len(capped.train("synthetic")) == 19  # cat keeps its one image
    balanced = store("balanced")
    assert len(balanced.train("real")) == 30 and len(balanced.train("synthetic")) == 10  # 3 and 1 per class
    matched = store("matched")
    assert len(matched.train("real")) == len(matched.train("synthetic")) == 10  # 1 per class on both sides
    assert matched.identity(f"folder:{synthetic}")["per_class"] == 1
    with pytest.raises(SynthgapError, match=r"per_class=2, but folder:.*generated-few \(train\) .* cat \(1\)"):
        store(2)


@pytest.mark.parametrize("channels_last", [True, False])
def test_only_runs_that_train_on_a_frozen_prefix_name_the_suffix_memory_format(channels_last):
    """A stage 2 on cached prefix outputs (a cut inside the model, no stage-2 augmentation) convolves its suffix
    channels-last when the recipe does, and so does a stitch; that is part of those runs' identity only, so a
    baseline's fingerprint, an augmented stage 2's, a ViT's (tokens, no maps) and every run's with
    `channels_last: false` are what they were."""
    from synthgap.experiments.identity import suffix_arithmetic

    experiments = [
        {"kind": "baseline"},
        {"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": [0, 4, 18], "augmentation": "none"},
        {"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": [4]},  # augmented: not cached
        {"kind": "data_reduction", "fractions": [0.5], "arms": ["transfer", "scratch"], "k": 4, "augmentation": "none"},
        {"kind": "stitching", "n": [4]},
    ]
    spec = tiny_spec(None, experiments, recipe={"channels_last": channels_last})
    named = {run.name for run in plan(spec) if suffix_arithmetic(run, spec)}
    suffix_runs = {
        "transfer-synthetic_to_real-n04-s0-aug_none",
        "reduction-transfer-k4-x2-s0-same_steps-aug_none",
        "stitch-synthetic-n04-s0-e4",
        "stitch-real-n04-s0-e4",
        "stitch-real_other-n04-s0-e4",
    }
    assert named == (suffix_runs if channels_last else set())
    vit = tiny_spec(None, [{**experiments[1], "n": [0, 4, 14]}], model={"name": "vit_tiny", "width": 0.25})
    assert len(plan(vit)) == 4
    assert not any(suffix_arithmetic(run, vit) for run in plan(vit))
