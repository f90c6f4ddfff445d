"""write_examples: the first k training images of each class from both sides, in one safetensors file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from synthgap.data.tensors import ImageTensors
from synthgap.experiments.examples import EXAMPLES_FILE, read_examples, write_examples

CLASSES = ("cat", "dog", "fox")


class StubStore:
    """What write_examples needs of a DataStore: `train(side)`."""

    def __init__(self, real: ImageTensors, synthetic: ImageTensors) -> None:
        self.sides = {"real": real, "synthetic": synthetic}
        self.calls: list[str] = []

    def train(self, side: str) -> ImageTensors:
        self.calls.append(side)
        return self.sides[side]


def numbered_images(labels: list[int], size: int, offset: int = 0) -> ImageTensors:
    """Image i is filled with the value offset + i, so a test can tell which images were taken."""
    images = torch.stack([torch.full((3, size, size), offset + i, dtype=torch.uint8) for i in range(len(labels))])
    return ImageTensors(images, torch.tensor(labels), CLASSES)


def test_first_images_of_each_class_in_index_order(tmp_path):
    real = numbered_images([0, 1, 0, 2, 0, 1, 0], size=8)  # cat at 0, 2, 4, 6; dog at 1, 5; fox at 3
    synthetic = numbered_images([2, 2, 1, 0, 1, 0, 0], size=8, offset=100)
    store = StubStore(real, synthetic)
    path = write_examples(store, tmp_path, per_class=3, size=8)
    assert path == tmp_path / EXAMPLES_FILE and sorted(store.calls) == ["real", "synthetic"]
    examples = read_examples(path)
    assert examples.classes == CLASSES and examples.per_class == 3
    assert examples.images["real"].shape == (3, 3, 3, 8, 8) and examples.images["real"].dtype == np.uint8
    first_pixel = {side: examples.images[side][:, :, 0, 0, 0].tolist() for side in ("real", "synthetic")}
    assert first_pixel["real"] == [[0, 2, 4], [1, 5, 0], [3, 0, 0]]  # short classes padded with black
    assert first_pixel["synthetic"] == [[103, 105, 106], [102, 104, 0], [100, 101, 0]]
    assert examples.counts == {"real": [3, 2, 1], "synthetic": [3, 2, 2]}
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    assert json.loads(metadata["classes"]) == list(CLASSES) and metadata["size"] == "8"


def test_larger_images_are_resized_with_antialiasing_and_output_is_deterministic(tmp_path):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 64, 64), generator=generator, dtype=torch.uint8)
    images[0] = 0
    images[0, :, :, ::2] = 255  # one-pixel stripes: plain subsampling would keep only one colour
    big = ImageTensors(images, torch.tensor([0, 1, 2, 0, 1, 2]), CLASSES)
    first = read_examples(write_examples(StubStore(big, big), tmp_path / "a", per_class=2, size=16))
    second = read_examples(write_examples(StubStore(big, big), tmp_path / "b", per_class=2, size=16))
    assert first.images["real"].shape == (3, 2, 3, 16, 16)
    assert all(np.array_equal(first.images[side], second.images[side]) for side in ("real", "synthetic"))
    stripes = first.images["real"][0, 0].astype(float)
    assert 100 < stripes.mean() < 155 and stripes.std() < 20  # averaged to grey, not aliased to black or white


def test_refuses_sides_with_different_classes_and_bad_arguments(tmp_path):
    real = numbered_images([0, 1, 2], size=4)
    other = ImageTensors(real.images, real.labels, ("a", "b", "c"))
    with pytest.raises(ValueError, match="different class lists"):
        write_examples(StubStore(real, other), tmp_path)
    with pytest.raises(ValueError, match="per_class >= 1"):
        write_examples(StubStore(real, real), tmp_path, per_class=0)
    assert not (tmp_path / EXAMPLES_FILE).exists()


def test_read_examples_rejects_a_file_it_did_not_write(tmp_path):
    from synthgap.io import save_safetensors

    path = tmp_path / EXAMPLES_FILE
    save_safetensors({"real": torch.zeros(2, 3, dtype=torch.uint8)}, path, metadata={"classes": '["a", "b"]'})
    with pytest.raises(ValueError, match="real"):
        read_examples(path)
