"""Test-time augmentation's views: where a shifted view's pixels come from, the weights, and `measure`'s weighted
mean over the views."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from synthgap.train.loop import measure
from synthgap.train.recipe import TrainRecipe
from synthgap.train.tta import TTA_VIEWS, View, apply_view, tta_views
from tests.train.test_fit import colour_classes, loaders


def grid(size: int = 5) -> torch.Tensor:
    return torch.arange(2 * 3 * size * size, dtype=torch.float32).view(2, 3, size, size)


def test_a_shift_down_right_moves_the_content_and_reflects_the_border():
    images = grid()
    shifted = apply_view(images, View(False, 1, 1.0))
    assert shifted.shape == images.shape
    assert torch.equal(shifted[..., 1:, 1:], images[..., :-1, :-1])
    assert torch.equal(shifted[..., 0, 1:], images[..., 1, :-1])  # the top row is the reflected second row
    assert torch.equal(shifted[..., 1:, 0], images[..., :-1, 1])


def test_a_shift_up_left_is_the_opposite_and_mirror_flips_after_it():
    images = grid()
    shifted = apply_view(images, View(False, -1, 1.0))
    assert torch.equal(shifted[..., :-1, :-1], images[..., 1:, 1:])
    assert torch.equal(shifted[..., -1, :-1], images[..., -2, 1:])
    assert torch.equal(apply_view(images, View(True, -1, 1.0)), shifted.flip(-1))
    assert torch.equal(apply_view(images, View(True, 0, 1.0)), images.flip(-1))
    assert apply_view(images, View(False, 0, 1.0)) is images


@pytest.mark.parametrize("name", sorted(TTA_VIEWS))
def test_every_policy_starts_with_the_plain_image_and_weighs_one_in_all(name):
    views = tta_views(name)
    assert views[0] == View(False, 0, views[0].weight)
    assert math.isclose(sum(view.weight for view in views), 1.0)
    assert len(set((view.mirror, view.shift) for view in views)) == len(views)
    # powers of two, so that the weighted sum of two views is their mean to the last bit
    assert all(math.log2(view.weight).is_integer() for view in views)


def test_the_recipe_takes_every_policy_of_the_table():
    choices = TrainRecipe.model_fields["tta"].annotation.__args__
    assert set(choices) == set(TTA_VIEWS)


class Pixels(nn.Module):
    """Logits read from single pixels, so that every shift and mirror changes them."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        corner, centre, edge = images[:, 1, 0, 0], images[:, 1, 8, 8], images[:, 1, 3, -1]  # the noise channel
        return self.scale * torch.stack([corner - centre, centre - edge, edge - corner], dim=1)


@pytest.mark.parametrize("name", sorted(TTA_VIEWS))
def test_measure_takes_the_weighted_mean_over_the_views(name):
    _, test = loaders(colour_classes(n_per_class=6, size=16))
    test.data.labels[:] = torch.arange(len(test.data.labels)) % 3  # labels the pixel model can get right or wrong
    model = Pixels()
    predicted, labels = [], []
    for images, batch_labels in test.epoch(0):
        logits = sum(view.weight * model(apply_view(images, view)) for view in tta_views(name))
        predicted.append(logits.argmax(dim=1))
        labels.append(batch_labels)
    expected = 100.0 * torch.cat(predicted).eq(torch.cat(labels)).float().mean().item()
    assert measure(model, test, precision="fp32", tta=name).top1 == pytest.approx(expected)


def test_the_views_change_what_the_pixel_model_predicts():
    """The comparison above would pass for a model that ignores the views."""
    _, test = loaders(colour_classes(n_per_class=6, size=16))
    test.data.labels[:] = torch.arange(len(test.data.labels)) % 3
    model = Pixels()
    images = next(iter(test.epoch(0)))[0]
    plain = model(images).argmax(dim=1)
    both = sum(view.weight * model(apply_view(images, view)) for view in tta_views("flip_translate")).argmax(dim=1)
    assert not torch.equal(plain, both)
