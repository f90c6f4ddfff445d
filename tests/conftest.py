"""Shared fixtures: tiny image trees written with PIL into tmp dirs (never real data, never the network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CIFAKE_NUMBERS = (1, 2, 10)  # numeric order (1, 2, 10) differs from string order (1, 10, 2)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny tensors run fastest on one intra-op thread; more threads spin against other jobs on a small machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test decodes into its own cache folder (never the user's ~/.cache/synthgap)."""
    folder = tmp_path / "synthgap-cache"
    monkeypatch.setenv("SYNTHGAP_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def hf_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`datasets` writes Arrow copies of what it loads into its cache: each test gets its own, never the user's."""
    import sys

    folder = tmp_path / "hf-datasets"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(folder))
    if "datasets" in sys.modules:  # read at import: an imported module is told directly
        monkeypatch.setattr(sys.modules["datasets"].config, "HF_DATASETS_CACHE", str(folder))
    return folder


@pytest.fixture
def model_cache(tmp_path: Path) -> Path:
    """A fresh model cache folder for `run_experiment(..., model_cache=...)`."""
    return tmp_path / "models"


def cifake_name(number: int, label: int) -> str:
    return f"{number}.jpg" if label == 0 else f"{number} ({label + 1}).jpg"


def _write_jpeg(path: Path, rng: np.random.Generator, size: tuple[int, int] = (32, 32)) -> Path:
    array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).save(path, format="JPEG", quality=90)
    return path


@pytest.fixture
def write_jpeg():
    """write_jpeg(path, seed=0, size=(32, 32)): a random-noise RGB JPEG at `path`."""

    def write(path: Path, seed: int = 0, size: tuple[int, int] = (32, 32)) -> Path:
        return _write_jpeg(Path(path), np.random.default_rng(seed), size)

    return write


@pytest.fixture
def cifake_root(tmp_path: Path) -> Path:
    """A data root holding cifake/{train,test}/{REAL,FAKE}/ with 3 random 32x32 JPEGs for each of the 10 classes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data_root"
    for split in ("train", "test"):
        for side in ("REAL", "FAKE"):
            folder = root / "cifake" / split / side
            folder.mkdir(parents=True)
            for label in range(10):
                for number in CIFAKE_NUMBERS:
                    _write_jpeg(folder / cifake_name(number, label), rng)
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """An ImageFolder tree <tmp>/folder/<class>/*.png: zebra 2, ant 3 (one in a sub-folder), moth 1, plus a .txt."""
    rng = np.random.default_rng(1)
    root = tmp_path / "folder"
    layout = {"zebra": ["z0.png", "z1.png"], "ant": ["a0.png", "a1.png", "sub/a2.png"], "moth": ["m0.png"]}
    for name, files in layout.items():
        for file in files:
            path = root / name / file
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    (root / "ant" / "notes.txt").write_text("not an image")
    return root
