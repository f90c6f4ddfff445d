"""The recipe's converged-training options: presets, schedule shapes, no decay on norms and biases, a weight
average, flip test-time augmentation and the learning curve on a fixed test subset."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthgap.config import validate
from synthgap.errors import SynthgapError
from synthgap.models import ModelConfig, build_model
from synthgap.train import loop
from synthgap.train.loop import WeightAverage, build_optimizer, fit, lr_schedule, measure, onecycle, triangular
from synthgap.train.presets import RECIPE_PRESETS
from synthgap.train.recipe import TrainRecipe
from tests.train.test_fit import RECIPE, colour_classes, loaders, tiny_model
from tests.train.test_resume import Preempted, preempt_in_epoch, same_weights, without_seconds


def recipe(**values) -> TrainRecipe:
    return validate(TrainRecipe, values)


def test_a_preset_fills_the_keys_the_recipe_does_not_set():
    fast = recipe(preset="fast")
    filled = (fast.batch_size, fast.lr, fast.schedule, fast.tta, fast.label_smoothing)
    assert filled == (512, 0.4, "triangular", "flip", 0.2)
    assert fast.model_dump() == recipe(**{**RECIPE_PRESETS.get("fast"), "preset": "fast"}).model_dump()
    mine = recipe(preset="fast", epochs=24, tta="none")
    assert (mine.epochs, mine.tta, mine.batch_size) == (24, "none", 512)
    assert recipe().preset == "default" and recipe().model_dump() == recipe(preset="default").model_dump()


def test_the_linear_rule_scales_the_learning_rate_with_the_batch():
    assert recipe(preset="fast").peak_lr == pytest.approx(0.4)
    assert recipe(preset="fast", batch_size=128).peak_lr == pytest.approx(0.1)
    assert recipe(lr=0.3, batch_size=64).peak_lr == 0.3  # no reference batch: lr as given
    optimizer = build_optimizer(tiny_model(), recipe(preset="fast", batch_size=256))
    assert [group["lr"] for group in optimizer.param_groups] == [pytest.approx(0.2)] * len(optimizer.param_groups)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (
            {"preset": "fsat"},
            "unknown recipe preset 'fsat' (did you mean 'fast'?); choose from: default, fast, fast_imagenet",
        ),
        ({"peak": 1.0}, "recipe: peak: must lie strictly between 0 and 1, got 1.0"),
        ({"peak": 0}, "recipe: peak: must lie strictly between 0 and 1, got 0.0"),
        ({"ema_decay": 1.5}, "recipe: ema_decay: must lie strictly between 0 and 1, got 1.5"),
        ({"schedule": "linear"}, "recipe: schedule: unknown value 'linear'; choose from: cosine, triangular, onecycle"),
        ({"tta": "crop"}, "recipe: tta: unknown value 'crop'; choose from: none, flip, flip_translate"),
    ],
)
def test_bad_recipe_values_are_one_line_each(values, words):
    with pytest.raises(SynthgapError) as caught:
        validate(TrainRecipe, values, where="recipe")
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_triangular_and_onecycle_peak_where_asked_and_end_near_zero():
    for shape in (triangular, onecycle):
        values = [shape(s, warmup_steps=20, total_steps=100) for s in range(100)]
        assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 19
        assert all(a <= b for a, b in zip(values[:20], values[1:20], strict=False))  # rises to the peak
        assert all(a >= b for a, b in zip(values[20:], values[21:], strict=False))  # then falls
        assert values[-1] < 0.05
    schedule = lr_schedule(recipe(schedule="triangular", peak=0.25, epochs=4), steps_per_epoch=10)
    assert [round(schedule(s), 3) for s in (0, 9, 10, 39)] == [0.1, 1.0, 1.0, round(1 / 30, 3)]


def test_norms_and_biases_can_be_left_undecayed():
    model = tiny_model()
    groups = build_optimizer(model, recipe(decay_norm_and_bias=False, weight_decay=1e-3)).param_groups
    decays = {group["weight_decay"]: group["params"] for group in groups}
    assert set(decays) == {1e-3, 0.0}
    assert all(p.ndim > 1 for p in decays[1e-3]) and all(p.ndim == 1 for p in decays[0.0])
    assert len(decays[1e-3]) + len(decays[0.0]) == len(list(model.parameters()))
    assert [g["weight_decay"] for g in build_optimizer(model, recipe()).param_groups] == [5e-4]


def test_the_weight_average_follows_the_weights_and_swaps_in_place():
    layer = nn.Linear(2, 2)
    average = WeightAverage(layer, decay=0.5)
    start = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    average.update()  # decay min(0.5, 2/11): mostly the new weights
    expected = start + (1 - 2 / 11)
    average.swap()
    assert torch.allclose(layer.weight, expected)
    average.swap()
    assert torch.allclose(layer.weight, start + 1.0)


def test_fit_with_an_average_tests_and_returns_the_averaged_weights():
    train, test = loaders(colour_classes())
    plain, averaged = tiny_model(), tiny_model()
    fit(plain, train, test, RECIPE, progress=False)
    result = fit(averaged, train, test, RECIPE.model_copy(update={"ema_decay": 0.9}), progress=False)
    assert not same_weights(plain, averaged)
    assert result.top1 == measure(averaged, test, precision="fp32").top1  # what was tested is what is returned


def test_an_averaged_run_resumes_to_identical_weights(tmp_path, monkeypatch):
    three = RECIPE.model_copy(update={"epochs": 3, "eval_every": 1, "ema_decay": 0.9})
    train, test = loaders(colour_classes())
    reference = tiny_model()
    expected = fit(reference, train, test, three, progress=False)
    with monkeypatch.context() as patch:
        preempt_in_epoch(patch, 3)
        with pytest.raises(Preempted):
            every_epoch = {"state_dir": tmp_path, "state_token": "t", "checkpoint_minutes": 0}
            fit(tiny_model(), train, test, three, progress=False, **every_epoch)
    resumed_model = tiny_model()
    resumed = fit(resumed_model, train, test, three, progress=False, state_dir=tmp_path, state_token="t")
    assert resumed.resumed_epochs == 2
    assert same_weights(reference, resumed_model)
    assert without_seconds(resumed.history) == without_seconds(expected.history)


class Mirrored(nn.Module):
    """Logits that tell an image from its mirror: class 0 when the left half is brighter."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # measure finds the device from the parameters

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        half = images.shape[-1] // 2
        left, right = images[..., :half].mean(dim=(1, 2, 3)), images[..., half:].mean(dim=(1, 2, 3))
        difference = 100 * (left - right)
        return torch.stack([difference, -difference, torch.zeros_like(left)], dim=1) + torch.tensor([0, 0, 0.01])


def test_flip_test_time_augmentation_averages_image_and_mirror():
    _, test = loaders(colour_classes(n_per_class=4))
    model = Mirrored()
    logits = torch.cat([model(images) for images, _ in test.epoch(0)])
    assert measure(model, test, precision="fp32").top1 < 100.0  # the image alone decides left vs right
    # with the mirror, left and right cancel: every image lands on the third class, which no image has
    assert measure(model, test, precision="fp32", tta="flip").top1 == 0.0
    assert logits.argmax(dim=1).ne(2).all()


def test_the_learning_curve_is_measured_on_one_fixed_subset(tmp_path):
    train, test = loaders(colour_classes())
    seen = []
    real_measure = loop.measure

    def spy(model, loader, **options):
        seen.append(loader.num_samples)
        return real_measure(model, loader, **options)

    three = RECIPE.model_copy(update={"epochs": 3, "eval_every": 1, "eval_images": 10})
    loop.measure = spy
    try:
        result = fit(tiny_model(), train, test, three, progress=False, out_dir=tmp_path)
    finally:
        loop.measure = real_measure
    assert seen == [10, 10, 10, 64]  # the curve every epoch, then the whole test set once
    assert [point[0] for point in result.curve] == [1, 2, 3] and result.curve_images == 10
    assert "top1" not in result.history[0] and "top1" in result.history[-1]
    header = (tmp_path / "summary.csv").read_text().splitlines()[0]
    assert header.endswith(",curve_top1")
    again = fit(tiny_model(), train, test, three, progress=False)
    # same subset, same numbers (the seconds of training differ from run to run)
    assert [point[:2] for point in again.curve] == [point[:2] for point in result.curve]


def test_the_whole_test_set_is_the_curve_when_no_subset_is_asked_for():
    train, test = loaders(colour_classes())
    result = fit(tiny_model(), train, test, RECIPE.model_copy(update={"eval_every": 1}), progress=False)
    assert result.curve_images == 64 and len(result.curve) == 2
    assert result.curve[-1][1] == pytest.approx(result.top1, abs=1e-4)


def test_the_auto_stem_keeps_small_images_at_their_resolution():
    assert ModelConfig(image_size=32).resolved_stem == "cifar"
    assert ModelConfig(image_size=64).resolved_stem == "cifar"
    assert ModelConfig(image_size=224).resolved_stem == "imagenet"
    assert ModelConfig(image_size=32, stem="imagenet").resolved_stem == "imagenet"
    small, large = build_model(ModelConfig(width=0.125)), build_model(ModelConfig(width=0.125, image_size=224))
    assert small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, nn.Identity)
    assert large.conv1.kernel_size == (7, 7) and isinstance(large.maxpool, nn.MaxPool2d)
