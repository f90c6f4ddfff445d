"""The arithmetic model behind benchmarks/bench_sweep_study.py: per-layer multiply-accumulates and a stage-2 run's
share of a full training."""

from __future__ import annotations

import pytest
from benchmarks.bench_converge import forward_macs
from benchmarks.bench_sweep_study import layer_macs, stage2_cost

from synthgap.models import ModelConfig, build_model

CONFIG = ModelConfig(width=0.25, num_classes=10, image_size=32, stem="cifar")
SIZES = {"epochs": 4, "train": 1000, "test": 200, "curve": 100, "views": 2}


def test_the_layers_share_out_the_whole_forward_pass():
    macs = layer_macs(CONFIG)
    assert sorted(macs) == list(range(1, 19))  # every numbered layer of ResNet-18 has arithmetic
    assert sum(macs.values()) == forward_macs(build_model(CONFIG), 32)
    assert macs[18] == 10 * 128  # the classifier: 128 features (quarter width) to 10 classes


def test_a_stage2_run_costs_less_the_more_layers_are_frozen():
    macs = layer_macs(CONFIG)
    costs = [stage2_cost(n, macs, **SIZES) for n in range(18)]
    assert all(later < earlier for earlier, later in zip(costs, costs[1:], strict=False))


def test_n0_is_training_and_evaluation_of_every_layer_with_no_feature_pass():
    macs = {1: 10, 2: 30}
    expected = 4 * 1000 * 3 * 40 + (4 * 100 + 200) * 2 * 40
    assert stage2_cost(0, macs, **SIZES) == expected
    # N = 1: the suffix is layer 2, plus one pass of layer 1 over the training and both views of the test images
    assert stage2_cost(1, macs, **SIZES) == 4 * 1000 * 3 * 30 + (1000 + 2 * 200) * 10 + (4 * 100 + 200) * 2 * 30


@pytest.mark.parametrize("views", [1, 2])
def test_flip_tta_doubles_only_the_evaluation_side(views):
    macs = {1: 10, 2: 30}
    base = stage2_cost(1, macs, **{**SIZES, "views": 1})
    assert stage2_cost(1, macs, **{**SIZES, "views": views}) - base == (views - 1) * (200 * 10 + (4 * 100 + 200) * 30)
