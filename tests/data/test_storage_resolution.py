"""A storage resolution above the training resolution: decoded once at the larger size, seen at the smaller one,
keyed and identified apart from sets stored at the training resolution."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from synthgap.data.config import DataPrep, load_split, split_identity
from synthgap.train.loaders import eval_loader, recipe_loaders
from synthgap.train.recipe import TrainRecipe


@pytest.fixture
def tree(tmp_path):
    """Two classes of 4:3 images (a horizontal gradient), like photographs of uneven size."""
    root = tmp_path / "photos"
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            im = Image.linear_gradient("L").resize((40, 30)).convert("RGB")
            im.putpixel((0, 0), (c, i, 0))
            im.save(root / name / f"{i}.png")
    return f"folder:{root}"


def prep(tmp_path, **kwargs):
    return DataPrep(cache_dir=tmp_path / "cache", workers=1, **kwargs)


def test_default_storage_is_the_resolution(tree, tmp_path):
    config = prep(tmp_path, resolution=16)
    images = load_split(config, tree, "train", None, progress=False)
    assert images.stored_size == (16, 16) and images.view_size is None
    assert "@" not in images.key
    assert "storage_resolution" not in split_identity(config, tree, "train", None)


def test_stored_larger_is_seen_at_the_resolution(tree, tmp_path):
    plain = load_split(prep(tmp_path, resolution=16), tree, "train", 3, progress=False)
    config = prep(tmp_path, resolution=16, storage_resolution=24)
    images = load_split(config, tree, "train", 3, progress=False)
    assert images.stored_size == (24, 24) and images.resolution == 16 and len(images) == 6
    assert images.key != plain.key and "@16" in images.key  # a model trained on one is not one of the other
    identity = split_identity(config, tree, "train", 3)
    assert identity["storage_resolution"] == 24 and identity["resolution"] == 16
    assert identity["files"] != split_identity(prep(tmp_path, resolution=16), tree, "train", 3)["files"]

    recipe = TrainRecipe(augmentation="rrc", batch_size=4)
    train, test = recipe_loaders(images, images, recipe, seed=0)
    assert next(train.epoch(0))[0].shape == (4, 3, 16, 16)
    assert next(eval_loader(images, recipe).epoch(0))[0].shape[-2:] == (16, 16)
    # the test view is the centre crop of the stored image: resize to 24, crop 16
    full = images.gather(torch.arange(1))[0]
    seen = next(eval_loader(images, recipe.model_copy(update={"normalization": "none"})).epoch(0))[0][0]
    assert torch.allclose(seen * 255, full[:, 4:20, 4:20].float(), atol=1e-3)


def test_storage_below_resolution_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="storage_resolution 16 is below the resolution 32"):
        DataPrep(resolution=32, storage_resolution=16)


def test_a_sweep_stored_larger_runs_end_to_end_and_is_told_apart(cifake_root, tmp_path, capsys, monkeypatch):
    """`synthgap run` with images stored at 24 and seen at 16: baselines with rrc and a transfer run (prefix
    outputs cached from the centre crops); the same folder with the default storage names the change."""
    import yaml

    from synthgap.experiments.results import read_results
    from tests.experiments.test_reliability import TINY, TRANSFER, run_args
    from tests.test_bad_inputs import synthgap

    monkeypatch.setenv("SYNTHGAP_CACHE_DIR", str(tmp_path / "cache"))
    blocks = [TRANSFER[0], {**TRANSFER[1], "augmentation": "none"}]
    spec = {**TINY, "experiments": blocks, "recipe": {**TINY["recipe"], "augmentation": "rrc"}}
    spec["data"] = {**TINY["data"], "data_root": str(cifake_root), "resolution": 16, "storage_resolution": 24}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, _, err = synthgap(capsys, *run_args(path, tmp_path / "out", tmp_path / "models"))
    assert code == 0, err
    records = read_results(tmp_path / "out")
    assert {r.run for r in records} == {"baseline-synthetic-s0", "transfer-synthetic_to_real-n02-s0-aug_none"}
    assert all(0.0 <= r.top1 <= 100.0 for r in records)

    del spec["data"]["storage_resolution"]
    path.write_text(yaml.safe_dump(spec))
    code, _, err = synthgap(capsys, *run_args(path, tmp_path / "out", tmp_path / "models"))
    assert code == 2 and "storage_resolution 24 →" in err


def test_statistics_are_of_the_images_as_seen(tree, tmp_path):
    """`data stats` / dataset normalization measure the centre crop a student sees, not the stored border."""
    from synthgap.data.stats import channel_stats, dataset_stats

    images = load_split(prep(tmp_path, resolution=16, storage_resolution=24), tree, "train", None, progress=False)
    crops = images.images[..., 4:20, 4:20]
    assert dataset_stats(images, tmp_path / "cache") == channel_stats(crops)
    assert channel_stats(crops) != channel_stats(images.images)  # the gradient makes the border differ
