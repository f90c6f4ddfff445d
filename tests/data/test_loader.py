from __future__ import annotations

import pytest
import torch

from synthgap.data.loader import TensorLoader
from synthgap.data.tensors import ImageTensors
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


def _stored_larger(size=12, seen=8, count=6):
    """Images stored at size×size whose pixel (y, x) holds 10·y + x (channel 0), seen at `seen`."""
    grid = (torch.arange(size)[:, None] * 10 + torch.arange(size)[None, :]).to(torch.uint8)
    images = grid.expand(count, 3, size, size).contiguous()
    return ImageTensors(images, torch.arange(count) % 2, ("a", "b"), resolution=seen)


def test_stored_larger_sets_are_centre_cropped_without_augmentation():
    data = _stored_larger()
    assert data.view_size == 8 and data.stored_size == (12, 12)
    images, _ = next(loader(data).epoch(0))
    assert images.shape == (4, 3, 8, 8)
    assert images[0, 0, 0, 0] * 255 == pytest.approx(22, abs=1e-3)  # the crop starts at (2, 2) of 12
    assert images[0, 0, 7, 7] * 255 == pytest.approx(99, abs=1e-3)


def test_rrc_crops_from_the_whole_stored_image():
    """rrc samples its boxes in the stored 12×12 image (not in the 8×8 centre crop) and resizes them to 8×8."""
    data = _stored_larger()
    augmentation = build_augmentation("rrc", data.view_size)
    seen = set()
    for epoch in range(20):
        for images, _ in loader(data, augmentation=augmentation, shuffle=True, seed=1).epoch(epoch):
            assert images.shape[-2:] == (8, 8)
            seen.update((images[:, 0] * 255).round().long().flatten().tolist())
    assert min(seen) < 22 or max(seen) > 99  # pixels outside the centre crop were used


def test_size_keeping_presets_see_the_centre_crop():
    data = _stored_larger()
    augmentation = build_augmentation("standard", data.view_size)
    images, _ = next(loader(data, augmentation=augmentation, seed=0).epoch(0))
    assert images.shape[-2:] == (8, 8)
    values = (images[:, 0] * 255).round().long()
    assert set(values[values > 0].tolist()) <= {10 * y + x for y in range(2, 10) for x in range(2, 10)}


def test_on_cpu_is_the_same_loader(probe):
    tl = loader(probe)
    assert tl.on("cpu") is tl


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("resident", [False, True])
@pytest.mark.parametrize("name", ["none", "standard", "rrc", "randaugment"])
def test_cuda_batches_match_cpu_batches(name, resident):
    """uint8 batches moved to the GPU and augmented there are the CPU's batches (same draws, same crops)."""
    data = _stored_larger(size=40, seen=32, count=64)
    augmentation = build_augmentation(name, data.view_size)
    cpu = loader(data, augmentation=augmentation, shuffle=True, seed=5)
    gpu = cpu.on("cuda", resident=resident)
    for (a, la), (b, lb) in zip(cpu.epoch(2), gpu.epoch(2), strict=True):
        assert b.device.type == "cuda" and lb.device.type == "cuda"
        assert torch.equal(la, lb.cpu())
        assert torch.allclose(a, b.cpu(), atol=1.5 / 255 / 0.2)  # interpolation may round one step apart


def _random_set(count: int = 40) -> ImageTensors:
    images = torch.randint(0, 256, (count, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return ImageTensors(images, torch.arange(count) % 4, tuple("abcd"))


@pytest.mark.parametrize("processes", [1, 2])
def test_reading_ahead_gives_the_same_batches_read_by_a_worker_thread(monkeypatch, processes):
    """The reader thread reads each batch while the one before it is used; the order is drawn whole first, so the
    batches and the augmentation's draws are exactly those of reading in the training thread."""
    import threading

    data = _random_set()
    readers: list[str] = []
    gather = ImageTensors.gather

    def spying(self, take, **options):
        readers.append(threading.current_thread().name)
        return gather(self, take, **options)

    monkeypatch.setattr(ImageTensors, "gather", spying)
    made = loader(data, shuffle=True, drop_last=True, seed=7, augmentation=build_augmentation("standard"))
    made = made.for_rank(1, processes)
    plain = list(made.epoch(3))
    assert readers and not any(name.startswith("synthgap-reader") for name in readers)
    readers.clear()
    made.read_ahead = True
    ahead = list(made.epoch(3))
    assert len(readers) == len(plain) and all(name.startswith("synthgap-reader") for name in readers)
    for (a, la), (b, lb) in zip(plain, ahead, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_a_reader_stopped_early_leaves_no_thread_and_a_failed_read_is_raised(monkeypatch):
    import threading

    made = loader(_random_set(), shuffle=True)
    made.read_ahead = True
    batches = made.epoch(0)
    next(batches)
    batches.close()  # a consumer that stops (a divergence, an evaluation subset): the one read in flight is awaited
    assert not any(t.name.startswith("synthgap-reader") for t in threading.enumerate())

    def failing(self, take, **options):
        raise OSError(5, "Input/output error", "rows.bin")

    monkeypatch.setattr(ImageTensors, "gather", failing)
    with pytest.raises(OSError, match="Input/output error"):
        next(made.epoch(0))
