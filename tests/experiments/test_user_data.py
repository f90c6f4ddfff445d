"""Users' own data end to end: a nested, imbalanced, symlinked real tree with split folders and a class map, a tiny
synthetic set (7–9 images per class) listing its classes in another order, through a baseline and a 2-N sweep."""

import warnings

import numpy as np
import pytest
from PIL import Image

from synthgap.experiments.results import read_results
from synthgap.experiments.runner import run_experiment
from synthgap.report.build import build_report
from tests.data.test_folder_layouts import ODD, write_images, write_split
from tests.specs import tiny_spec


@pytest.fixture
def user_data(tmp_path):
    real = tmp_path / "photos"
    write_split(real / "train", tmp_path / "store_train", scale=1)  # Dog 300, Cat 16, ODD 20 (through links)
    write_split(real / "test", tmp_path / "store_test", scale=2)
    class_map = tmp_path / "map.csv"
    class_map.write_text(f"folder,class\ndogs,Dog\ncats/tabby,Cat\ncats/siamese/,Cat\n{ODD},{ODD}\n", encoding="utf-8")
    synthetic = tmp_path / "generated"
    for count, name in ((9, "Dog"), (7, "Cat"), (8, ODD)):  # folder order differs from the class map's
        write_images(synthetic / name, count, prefix="gen")
    rng = np.random.default_rng(0)
    for image in sorted(tmp_path.rglob("*.png")):  # varied pixels (the layout helpers write one colour)
        if not image.is_symlink():
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(image)
    return f"folder:{real}?class_map={class_map}", f"folder:{synthetic}"


def run_on_user_data(user_data: tuple[str, str], experiments: list[dict], out, model_cache) -> list:
    """`experiments` on the user's folders: 7 images per class a side (matched), tested on the real tree, 16 px."""
    real, synthetic = user_data
    data = {"real": real, "synthetic": synthetic, "test": real, "resolution": 16, "per_class": "matched"}
    spec = tiny_spec(None, experiments, name="user-data", data=data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the link loop inside the tree is reported; that is tested elsewhere
        return run_experiment(spec, out, model_cache=model_cache, progress=False)


@pytest.mark.slow
def test_a_baseline_and_a_sweep_on_users_folders(user_data, tmp_path, model_cache):
    experiments = [{"kind": "baseline"}, {"kind": "layer_transfer", "n": [2, 16], "augmentation": "none"}]
    records = run_on_user_data(user_data, experiments, tmp_path / "out", model_cache)
    assert len(records) == 6
    baselines = {r.side: r for r in records if r.kind == "baseline"}
    # matched: 7 images per class on both sides (the synthetic set's smallest class), 3 classes
    assert baselines["real"].train_images == baselines["synthetic"].train_images == 21
    assert baselines["real"].classes == baselines["synthetic"].classes == ["Cat", ODD, "Dog"]  # the test set's order
    assert all(len(r.per_class_top1) == 3 and r.balanced_top1 is not None for r in records)
    report = build_report(tmp_path / "out").read_text()
    assert "balanced top-1" in report and "Per-class" in report
    assert [r.run for r in read_results(tmp_path / "out")] == [r.run for r in records]


@pytest.mark.slow
def test_stitching_and_the_exchange_rate_on_users_folders(user_data, tmp_path, model_cache):
    """The two newer measurements on an own-data set of 3 odd-named classes, 7 images per class a side."""
    experiments = [
        {"kind": "stitching", "n": [2], "epochs": 1},  # a cut inside a residual block: two stitched maps
        {"kind": "exchange_rate", "real_per_class": [2, 5], "synthetic_per_class": [2, 7]},
    ]
    records = run_on_user_data(user_data, experiments, tmp_path / "out", model_cache)
    stitches = [r for r in records if r.kind == "stitching"]
    assert sorted((r.giver, r.n_transferred) for r in stitches) == [("real", 2), ("real_other", 2), ("synthetic", 2)]
    assert all(len(r.per_class_top1) == 3 and r.start_top1 is not None for r in stitches)
    rungs = sorted((r.side, r.per_class, r.train_images) for r in records if r.kind == "exchange_rate")
    assert rungs == [("real", 2, 6), ("real", 5, 15), ("synthetic", 2, 6), ("synthetic", 7, 21)]
    report = build_report(tmp_path / "out").read_text()
    assert "## Model stitching" in report and "## Exchange rate: synthetic images per real image" in report
