"""Image sets: a concatenation keeps the contract of a single set (selections and resolutions without copies)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthgap.data.tensors import ConcatenatedImages, ImageTensors, concat_images


def _parts():
    generator = torch.Generator().manual_seed(0)
    first = ImageTensors(
        torch.randint(0, 256, (5, 3, 12, 12), dtype=torch.uint8, generator=generator),
        torch.tensor([0, 1, 2, 0, 1]),
        ("a", "b", "c"),
        key="first",
    )
    second = ImageTensors(
        torch.randint(0, 256, (4, 3, 12, 12), dtype=torch.uint8, generator=generator),
        torch.tensor([2, 2, 1, 0]),
        ("a", "b", "c"),
        skipped=["x.png"],
        key="second",
    )
    return first, second


def test_concatenation_reads_its_parts_in_order():
    first, second = _parts()
    mixed = concat_images([first, second])
    assert len(mixed) == 9 and mixed.skipped == ["x.png"] and mixed.key.startswith("mix-")
    assert torch.equal(mixed.images, torch.cat([first.images, second.images]))
    assert torch.equal(mixed.labels, torch.cat([first.labels, second.labels]))
    assert mixed.nbytes == 9 * 3 * 12 * 12 and mixed.stored_size == (12, 12)


def test_selection_copies_nothing_and_follows_the_positions():
    first, second = _parts()
    mixed = concat_images([first, second])
    whole = torch.cat([first.images, second.images])
    positions = np.array([8, 0, 5, 5, 3])
    selected = mixed.select(positions)
    assert isinstance(selected, ConcatenatedImages)  # still reads from the parts: no tensor of its own
    assert torch.equal(selected.images, whole[positions])
    assert torch.equal(selected.labels, mixed.labels[positions])
    assert selected.key != mixed.key and selected.key.startswith(mixed.key)
    # a selection of a selection composes the positions
    again = selected.select(np.array([4, 0]))
    assert torch.equal(again.images, whole[[3, 8]]) and torch.equal(again.gather(slice(1, 2)), whole[[8]])
    assert torch.equal(selected.gather(torch.tensor([True, False, False, False, True])), whole[[8, 3]])


def test_resolution_applies_to_every_part():
    first, second = _parts()
    mixed = concat_images([first, second]).select(np.array([7, 1]))
    seen = mixed.with_resolution(8, "small")
    assert seen.resolution == 8 and seen.view_size == 8 and seen.key == "small"
    assert torch.equal(seen.images, mixed.images)  # stored images stay whole; loaders crop to the view size
    with pytest.raises(ValueError, match="cannot be seen at"):
        mixed.with_resolution(16, "too big")
