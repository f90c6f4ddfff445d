"""Where benchmarks/bench_converge.py says the training step's time goes."""

from __future__ import annotations

from benchmarks.bench_converge import STEP_PARTS, step_shares

from synthgap.models import ModelConfig
from synthgap.train.recipe import TrainRecipe


def test_the_step_shares_cover_the_step_and_the_convolutions_run_both_ways():
    config = ModelConfig(width=0.125, num_classes=10, image_size=32, stem="cifar")
    recipe = TrainRecipe(preset="fast", batch_size=8, precision="fp32")
    shares = step_shares(config, recipe, steps=1)
    assert list(shares) == [*STEP_PARTS, "other"]
    assert abs(sum(shares.values()) - 100) < 1e-6
    # a CIFAR-stem ResNet-18 is convolutions and BatchNorm: each named part takes time, and they are most of the step
    assert all(shares[part] > 0 for part in STEP_PARTS)
    assert shares["conv_forward"] + shares["conv_backward"] > shares["other"]
