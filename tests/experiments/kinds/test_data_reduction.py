"""The data-reduction kind: its plan, fraction checks and labels, same-steps schedules, and tiny end-to-end runs."""

import pytest

from synthgap.errors import SynthgapError
from synthgap.experiments.kinds.data_reduction import divisor_label, same_steps_epochs, same_steps_recipe
from synthgap.experiments.plan import plan
from synthgap.experiments.runner import run_experiment
from synthgap.train.recipe import TrainRecipe
from tests.specs import tiny_spec

# the spec's default name, every image and batches of 8
REDUCTION = {"name": "experiment", "per_class": None, "recipe": {"batch_size": 8}}


def block(**settings) -> dict:
    return {"kind": "data_reduction", **settings}


def test_plan_has_every_arm_and_fraction_after_the_synthetic_baseline():
    runs = plan(
        tiny_spec(
            None,
            [block(fractions=[1, 0.5], arms=["transfer", "scratch", "full_finetune"], k=15, augmentation="none")],
            **REDUCTION,
        )
    )
    assert [r.name for r in runs] == [
        "baseline-synthetic-s0",
        "reduction-transfer-k15-x1-s0-same_steps-aug_none",
        "reduction-transfer-k15-x2-s0-same_steps-aug_none",
        "reduction-scratch-x1-s0-same_steps",  # no k, and the recipe's augmentation
        "reduction-scratch-x2-s0-same_steps",
        "reduction-full_finetune-x1-s0-same_steps-aug_none",
        "reduction-full_finetune-x2-s0-same_steps-aug_none",
    ]
    transfer, scratch, full = runs[2], runs[3], runs[5]
    assert (transfer.n, transfer.setup.frozen, transfer.setup.source, transfer.fraction) == (15, True, "synthetic", 0.5)
    assert (scratch.n, scratch.setup.frozen, scratch.setup.source) == (0, False, None)
    assert (full.n, full.setup.frozen, full.setup.rest) == (18, False, "finetune")


def test_fraction_validation_and_labels():
    with pytest.raises(SynthgapError, match=r"fractions must be in \(0, 1\]"):
        tiny_spec(None, [block(fractions=[0.5, 0])], **REDUCTION)
    assert [divisor_label(f) for f in (1, 1 / 8, 1 / 64, 0.3)] == ["x1", "x8", "x64", "x3.33"]


def test_same_steps_gives_small_fractions_more_epochs():
    recipe = TrainRecipe(epochs=4, batch_size=100)
    assert same_steps_epochs(recipe, 1000, 1000) == 4
    assert same_steps_epochs(recipe, 1000, 500) == 8  # 40 steps at 10 vs 5 steps per epoch
    assert same_steps_epochs(recipe, 1000, 30) == 40  # fewer images than a batch: one step per epoch


def test_same_steps_stretches_the_learning_curve_alike():
    curve = TrainRecipe(epochs=4, batch_size=100, eval_every=1)
    assert (same_steps_recipe(curve, 40).epochs, same_steps_recipe(curve, 40).eval_every) == (40, 10)
    assert same_steps_recipe(curve, 4).eval_every == 1
    assert same_steps_recipe(TrainRecipe(epochs=4), 40).eval_every == 0  # no curve stays no curve


def test_reduction_runs_train_on_nested_fractions(cifake_root, tmp_path, monkeypatch):
    spec = tiny_spec(
        cifake_root,
        [block(fractions=[1, 1 / 3], arms=["transfer", "scratch"], augmentation="none", schedule="same_epochs")],
        **REDUCTION,
    )
    records = {r.run: r for r in run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "m", progress=False)}
    full = records["reduction-transfer-k16-x1-s0-same_epochs-aug_none"]
    third = records["reduction-transfer-k16-x3-s0-same_epochs-aug_none"]
    assert (full.train_images, third.train_images) == (30, 10)  # 3 images per class, then 1 per class
    assert third.real_fraction == pytest.approx(1 / 3) and third.x == 3 and third.arm == "transfer"
    assert third.prefix_cache is True and third.frozen and third.n_transferred == 16
    scratch = records["reduction-scratch-x3-s0-same_epochs"]
    assert scratch.source is None and scratch.train_images == 10 and scratch.epochs == 1


def test_scratch_on_all_real_data_is_the_real_baseline_reused(cifake_root, tmp_path, monkeypatch):
    experiments = [{"kind": "baseline", "sides": ["real"]}, block(fractions=[1, 0.5], arms=["scratch"])]
    spec = tiny_spec(cifake_root, experiments, **REDUCTION)
    models = tmp_path / "m"
    records = {r.run: r for r in run_experiment(spec, tmp_path / "out", model_cache=models, progress=False)}
    baseline, scratch_all = records["baseline-real-s0"], records["reduction-scratch-x1-s0-same_steps"]
    assert (scratch_all.top1, scratch_all.top5) == (baseline.top1, baseline.top5)
    cached = [p for p in models.iterdir() if not p.name.startswith(".")]
    assert len(cached) == 1  # one model trained and cached; the half-data scratch is not kept
