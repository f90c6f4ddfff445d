from __future__ import annotations

import numpy as np
import pytest

from synthgap.data.subsets import stratified_positions
from synthgap.errors import SynthgapError

CLASSES = ("a", "b", "c", "d")
SIZES = (10, 20, 5, 7)


@pytest.fixture
def labels():
    return np.random.default_rng(0).permutation(np.repeat(np.arange(4), SIZES))


def counts(labels, positions):
    return np.bincount(labels[positions], minlength=len(CLASSES)).tolist()


def test_per_class_exact_counts(labels):
    positions = stratified_positions(labels, CLASSES, per_class=4, seed=1)
    assert counts(labels, positions) == [4, 4, 4, 4]
    assert np.all(np.diff(positions) > 0)  # sorted, no repeats


@pytest.mark.parametrize("fraction, expected", [(0.3, [3, 6, 2, 2]), (0.01, [1, 1, 1, 1]), (1.0, list(SIZES))])
def test_fraction_rounds_and_keeps_at_least_one(labels, fraction, expected):
    assert counts(labels, stratified_positions(labels, CLASSES, fraction=fraction)) == expected


@pytest.mark.parametrize(
    "small, large", [({"per_class": 2}, {"per_class": 5}), ({"fraction": 0.25}, {"fraction": 0.5})]
)
def test_smaller_subset_nested_in_larger(labels, small, large):
    a = stratified_positions(labels, CLASSES, seed=3, **small)
    b = stratified_positions(labels, CLASSES, seed=3, **large)
    assert len(a) < len(b)
    assert set(a.tolist()) <= set(b.tolist())


def test_seed_determines_subset(labels):
    first = stratified_positions(labels, CLASSES, per_class=3, seed=7)
    np.testing.assert_array_equal(first, stratified_positions(labels, CLASSES, per_class=3, seed=7))
    assert not np.array_equal(first, stratified_positions(labels, CLASSES, per_class=3, seed=8))


def test_per_class_larger_than_class_names_it(labels):
    with pytest.raises(SynthgapError, match="'c' has 5 images"):
        stratified_positions(labels, CLASSES, per_class=6)


@pytest.mark.parametrize(
    "kwargs",
    [{"fraction": 0.0}, {"fraction": 1.5}, {"fraction": -0.1}, {"per_class": 0}, {}, {"per_class": 1, "fraction": 0.5}],
)
def test_invalid_subset_arguments(labels, kwargs):
    with pytest.raises(SynthgapError):
        stratified_positions(labels, CLASSES, **kwargs)
