"""Per-channel statistics: exact values, the cache, and the `data stats` command."""

import json

import pytest
import torch
from typer.testing import CliRunner

from synthgap.cli import app
from synthgap.data import stats as stats_module
from synthgap.data.stats import channel_stats, dataset_stats
from synthgap.data.tensors import ImageTensors
from synthgap.errors import SynthgapError


def test_channel_stats_equal_plain_mean_and_population_std():
    images = torch.randint(0, 256, (37, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    stats = channel_stats(images)
    scaled = images.double() / 255
    assert stats.mean == pytest.approx(scaled.mean(dim=(0, 2, 3)).tolist(), abs=1e-6)
    assert stats.std == pytest.approx(scaled.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-6)


def test_channel_stats_of_two_level_channels(monkeypatch):
    monkeypatch.setattr(stats_module, "CHUNK", 2)  # several chunks accumulate to the same answer
    images = torch.zeros(5, 3, 4, 4, dtype=torch.uint8)
    images[:, 0, :2] = 255  # half the pixels at 1.0
    images[:, 1, :1] = 255  # a quarter
    images[:, 2] = 51
    images[:, 2, :, :2] = 102  # half at 0.2, half at 0.4
    stats = channel_stats(images)
    assert stats.mean == pytest.approx((0.5, 0.25, 0.3)) and stats.std == pytest.approx((0.5, 0.75**0.5 / 2, 0.1))


def test_a_constant_channel_is_a_clear_error():
    images = torch.full((2, 3, 4, 4), 9, dtype=torch.uint8)
    images[:, :2, 0] = 200
    with pytest.raises(SynthgapError, match="constant"):
        channel_stats(images)


def test_channel_stats_reject_bad_shapes():
    with pytest.raises(ValueError, match="N×3×H×W"):
        channel_stats(torch.zeros(0, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="N×3×H×W"):
        channel_stats(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


def test_dataset_stats_are_cached_by_image_key(tmp_path, monkeypatch):
    pixels = torch.full((4, 3, 2, 2), 51, dtype=torch.uint8)
    pixels[:, :, 0] = 102
    images = ImageTensors(pixels, torch.zeros(4, dtype=torch.long), ("a",), key="abc:123")
    first = dataset_stats(images, tmp_path)
    assert first.mean == pytest.approx((0.3, 0.3, 0.3))

    def must_not_compute(_):
        raise AssertionError("statistics recomputed despite the cache")

    monkeypatch.setattr(stats_module, "channel_stats", must_not_compute)
    assert dataset_stats(images, tmp_path) == first
    with pytest.raises(ValueError, match="without a key"):
        dataset_stats(ImageTensors(images.images, images.labels, ("a",)), tmp_path)


def test_data_stats_command(cifake_root, tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["data", "stats", "cifake:real", "--data-root", str(cifake_root), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "cifake:real (train, 30 images at 32 px)" in result.output and result.output.count("0.") >= 6
    as_json = runner.invoke(
        app, ["data", "stats", "cifake:synthetic", "--data-root", str(cifake_root), "--json", "--split", "test", "-q"]
    )
    values = json.loads(as_json.output)
    assert len(values["mean"]) == 3 and all(0 < v < 1 for v in values["mean"] + values["std"])
    bad = runner.invoke(app, ["data", "stats", "cifake:real", "--split", "val", "--data-root", str(cifake_root)])
    assert bad.exit_code != 0 and "split must be train or test" in str(bad.exception)


def test_per_class_stats_decode_only_the_chosen_images(cifake_root, monkeypatch):
    """`data stats --per-class N` decodes N images a class, not the side, and measures the images load_split picks."""
    from synthgap.data import cache
    from synthgap.data.config import DataPrep, load_split
    from synthgap.data.stats import source_stats

    decoded: list[int] = []
    real = cache._decode_to_cache

    def spy(path, index, *args, **kwargs):
        decoded.append(len(index))
        return real(path, index, *args, **kwargs)

    monkeypatch.setattr(cache, "_decode_to_cache", spy)
    prep = DataPrep(data_root=cifake_root)
    stats, count = source_stats(prep, "cifake:real", "train", per_class=1, progress=False)
    assert decoded == [10] and count == 10  # one image of each of the 10 classes
    chosen = load_split(prep, "cifake:real", "train", 1, progress=False)  # decodes the whole side (30)
    assert decoded == [10, 30]
    assert stats == channel_stats(chosen.images)
