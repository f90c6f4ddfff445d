"""Shared fixtures: tiny random-weight pipelines saved to disk once per session, and a reference generated set.

The builders live in the package (synthgap.generate.tiny) so the benchmark uses the same ones. Models are always
loaded back with from_pretrained(local_dir) — the code path a user's model id takes after resolution.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from synthgap.generate.text2img import Text2ImgConfig, generate_text2img
from synthgap.generate.tiny import save_tiny_text2img, save_tiny_unclip

# Tiny and fast: 32 px, 2 steps, 3 images per CIFAR-10 class, batches of 4 (so batches span classes and shards)
TINY_SETTINGS = {"classes": "cifar10", "per_class": 3, "size": 32, "steps": 2, "batch_size": 4, "seed": 7}


@pytest.fixture(autouse=True, scope="session")
def _offline():
    """No test may reach a model hub; an empty HF_HOME makes 'not cached' certain."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_HOME")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(Path(os.environ.get("TMPDIR", "/tmp")) / "synthgap-tests-empty-hf-home")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_text2img(tmp_path_factory) -> Path:
    return save_tiny_text2img(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_unclip(tmp_path_factory) -> Path:
    return save_tiny_unclip(tmp_path_factory.mktemp("models") / "tiny-unclip")


def tiny_config(model: Path, out: Path, **changes) -> Text2ImgConfig:
    return Text2ImgConfig(out=out, model=str(model), **{**TINY_SETTINGS, **changes})


@pytest.fixture(scope="session")
def reference_set(tiny_text2img, tmp_path_factory) -> Path:
    """The tiny CIFAR-10 set generated in one shard, one go. Tests must not modify it (copy it first)."""
    out = tmp_path_factory.mktemp("reference") / "gen"
    generate_text2img(tiny_config(tiny_text2img, out), progress=False)
    return out


def png_files(root: Path) -> dict[str, bytes]:
    """Every class-folder PNG under `root` (previews excluded) by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/*.png")) if p.parent.name != "previews"
    }
