from __future__ import annotations

import pytest
import torch

from synthgap.data.cache import ImageTensors
from synthgap.data.loader import TensorLoader
from synthgap.data.transforms import build_augmentation, get_normalization

N = 10


@pytest.fixture
def probe():
    """Image i is filled with the value i and has label i, so batches show which samples they hold."""
    images = torch.arange(N, dtype=torch.uint8)[:, None, None, None].expand(N, 3, 8, 8).contiguous()
    return ImageTensors(images, torch.arange(N), tuple("abcdefghij"))


def loader(data, **kwargs):
    return TensorLoader(data, batch_size=4, normalization=get_normalization("none"), **kwargs)


@pytest.mark.parametrize("drop_last, batches", [(False, 3), (True, 2)])
def test_len_and_batches(probe, drop_last, batches):
    tl = loader(probe, drop_last=drop_last)
    assert len(tl) == batches
    sizes = [len(labels) for _, labels in tl.epoch(0)]
    assert sizes == ([4, 4, 2] if not drop_last else [4, 4])


def test_shuffled_epoch_covers_every_sample_once(probe):
    batches = list(loader(probe, shuffle=True, seed=3).epoch(1))
    labels = torch.cat([labels for _, labels in batches])
    assert sorted(labels.tolist()) == list(range(N))
    assert labels.tolist() != list(range(N))  # actually shuffled
    images = torch.cat([images for images, _ in batches])
    assert torch.allclose(images[:, :, 0, 0] * 255, labels[:, None].float().expand(-1, 3), atol=1e-3)


def test_seed_and_epoch_determine_batches():
    data = ImageTensors(
        torch.randint(0, 256, (N, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
        torch.arange(N),
        tuple("abcdefghij"),
    )

    def run(seed, epoch):
        tl = loader(data, shuffle=True, seed=seed, augmentation=build_augmentation("standard"))
        return list(tl.epoch(epoch))

    def same(a, b):
        return all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))

    assert same(run(1, 2), run(1, 2))
    assert not same(run(1, 2), run(1, 3))
    assert not same(run(1, 2), run(2, 2))


def test_channels_last_output(probe):
    plain = next(iter(loader(probe)))[0]
    images, _ = next(iter(loader(probe, channels_last=True)))
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert not plain.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(images, plain)
