from __future__ import annotations

import numpy as np
import pytest
import torch

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


def test_split_files_name_each_row_of_a_subset_with_skipped_images(tmp_path, write_jpeg):
    from synthgap.data.config import DataPrep, load_split, split_files
    from synthgap.data.decode import decode_image

    for name in ("ant", "bee"):
        (tmp_path / "set" / name).mkdir(parents=True)
        for i in range(5):
            write_jpeg(tmp_path / "set" / name / f"{i}.jpg", seed=i + (10 if name == "bee" else 0))
    (tmp_path / "set" / "ant" / "2.jpg").write_bytes(b"not an image")  # skipped with skip_bad
    config = DataPrep(skip_bad=True, cache_dir=tmp_path / "cache")
    ref = f"folder:{tmp_path / 'set'}"
    images = load_split(config, ref, "train", 3, progress=False)
    files = split_files(config, ref, "train", 3, images, classes=("ant", "bee"))
    assert len(files) == len(images) == 6 and not any(f.name == "2.jpg" and f.parent.name == "ant" for f in files)
    for row, path in enumerate(files):  # each row is the file named for it
        assert (images.gather(torch.tensor([row]))[0].numpy() == decode_image(path, 32)).all()
        assert images.classes[int(images.labels[row])] == path.parent.name
