"""A diverged run raises DivergenceError before `fit` returns, and a recipe never holds a non-finite number."""

import math

import pydantic
import pytest
import torch
import yaml
from torch import nn

from synthgap.errors import DivergenceError
from synthgap.train import loop
from synthgap.train.loop import LossWatch, check_finite_parameters, fit
from synthgap.train.recipe import TrainRecipe
from tests.train.test_fit import RECIPE, colour_classes, loaders, tiny_model


def test_a_huge_learning_rate_raises_instead_of_returning_a_model(tmp_path):
    train, test = loaders(colour_classes())
    recipe = RECIPE.model_copy(update={"lr": 1e6})
    with pytest.raises(DivergenceError) as caught:
        fit(tiny_model(), train, test, recipe, out_dir=tmp_path, progress=False, desc="baseline-real-s0")
    message = str(caught.value)
    assert message.startswith("baseline-real-s0 diverged: loss is nan at epoch 1, step ")
    assert "(lr 1e+06); nothing was recorded — lower recipe.lr" in message and "\n" not in message
    assert (caught.value.desc, caught.value.epoch, caught.value.lr) == ("baseline-real-s0", 1, 1e6)
    # the epoch that diverged was never logged as a finished epoch
    assert (tmp_path / "summary.csv").read_text().splitlines() == ["epoch,train_loss,lr,top1,top5,seconds,curve_top1"]


def test_the_loss_check_names_the_first_bad_step(monkeypatch):
    monkeypatch.setattr(loop, "CHECK_EVERY", 4)
    watch = LossWatch("run-a", epoch=3, lr=0.5)
    for value in (1.0, 2.0, 3.0, 4.0, 1.0, math.inf, math.nan):
        watch.add(torch.tensor(value))
    assert watch.steps == 4 and watch.total == 10.0  # the first window was checked and summed
    with pytest.raises(DivergenceError, match=r"run-a diverged: loss is inf at epoch 3, step 6 \(lr 0.5\)"):
        watch.check()


def test_the_last_steps_of_an_epoch_are_checked_too(monkeypatch):
    """fit checks at the end of every epoch, so a bad loss in a window shorter than CHECK_EVERY is still caught."""
    train, test = loaders(colour_classes())
    real_call = loop.TrainStep.__call__
    calls = []

    def nan_on_third_step(self, images, labels):
        loss = real_call(self, images, labels)
        calls.append(1)
        return torch.full_like(loss, math.nan) if len(calls) == 3 else loss

    monkeypatch.setattr(loop.TrainStep, "__call__", nan_on_third_step)
    with pytest.raises(DivergenceError, match="loss is nan at epoch 1, step 3 "):
        fit(tiny_model(), train, test, RECIPE, progress=False, desc="run-b")
    assert len(calls) == 4  # the epoch's four steps ran; the check at its end raised


def test_non_finite_parameters_are_caught():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    check_finite_parameters(model, "run-c", 1, 10, 0.1)  # finite: no error
    model[1].running_var[2] = math.inf
    with pytest.raises(DivergenceError, match=r"parameter 1.running_var is not finite at epoch 1, step 10"):
        check_finite_parameters(model, "run-c", 1, 10, 0.1)


@pytest.mark.parametrize("field", ["lr", "weight_decay", "momentum", "warmup_epochs", "label_smoothing"])
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_recipe_rejects_non_finite_numbers_from_yaml(field, value):
    settings = yaml.safe_load(f"{field}: {value}")
    with pytest.raises(pydantic.ValidationError, match=f"{field}\n  Input should be a finite number"):
        TrainRecipe(**settings)
