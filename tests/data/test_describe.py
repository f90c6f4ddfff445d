"""`synthgap data describe` takes every data reference a spec takes (cifake:, folder:, generated:, hf:, imagenet100:)
as well as a folder, and describes a `synthgap generate` output as a generated set, not as class folders."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from synthgap.data.describe import DESCRIBERS, describe
from synthgap.data.sources import DATA_ROOT_ENV, SOURCES
from synthgap.errors import SynthgapError

CLASSES = (("n01", "tench"), ("n02", "goldfish"))
TEMPLATES = ("a photo of a {name}", "{name} inside {background}")


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), (seed * 40 % 256, 30, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_generated(root: Path, per_class: tuple[int, ...] = (4, 1)) -> Path:
    """A text2img-like output folder: class folders, previews/, generate.json and a manifest with prompts."""
    records = []
    for label, ((class_id, name), count) in enumerate(zip(CLASSES, per_class, strict=True)):
        (root / class_id).mkdir(parents=True)
        for i in range(count):
            data = _png(label * 10 + i)
            file = f"{class_id}/{class_id}_{i:05d}.png"
            (root / file).write_bytes(data)
            template = TEMPLATES[i % 2]
            records.append(
                {
                    "class": class_id,
                    "class_name": name,
                    "label": label,
                    "index": i,
                    "file": file,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "prompt": template.format(name=name, background="a lake"),
                    "template": template,
                    "model": "tiny-sd",
                    "revision": "abc123",
                    "scheduler": "ddim",
                    "steps": 2,
                    "guidance": 7.5,
                    "size": 32,
                    "seed": 1000 + i,
                }
            )
    (root / "previews").mkdir()
    (root / "previews" / "n01.png").write_bytes(_png(99))
    (root / "generate.json").write_text(json.dumps({"kind": "text2img", "model": "tiny-sd", "templates": TEMPLATES}))
    (root / "manifest.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return root


def test_a_generated_set_is_described_from_its_manifest_by_reference_and_by_path(tmp_path):
    root = write_generated(tmp_path / "gen")
    for data in (f"generated:{root}", root):
        text = describe(data)
        assert text.startswith(f"layout: generated set (synthgap generate text2img, {root})"), text
        assert "class folders" not in text
        assert "model: tiny-sd (revision abc123)" in text
        assert "sampling: scheduler ddim, steps 2, guidance 7.5, size 32" in text
        assert "prompts: 3 distinct over 5 images, e.g. 'a photo of a tench'" in text
        assert "templates: 'a photo of a {name}', '{name} inside {background}'" in text
        assert "class names: n01 tench, n02 goldfish" in text
        assert f"generated:{root}: 5 images, 2 classes" in text
        assert re.search(r"^\s+n01\s+4$", text, re.M) and re.search(r"^\s+n02\s+1$", text, re.M)
        assert "imbalanced: largest class 4 images (n01), smallest 1 (n02)" in text


def test_an_unfinished_generated_set_is_refused_as_such(tmp_path):
    root = write_generated(tmp_path / "gen")
    (root / "manifest.jsonl").unlink()  # a run killed before its last shard merged
    for data in (f"generated:{root}", root):
        with pytest.raises(SynthgapError, match=r"no manifest.jsonl in .*generation not finished"):
            describe(data)


def test_folder_references_read_as_the_spec_reads_them(image_folder, tmp_path):
    text = describe(f"folder:{image_folder}")
    assert text.startswith(f"layout: class folders ({image_folder})")
    assert f"folder:{image_folder}: 6 images, 3 classes" in text
    class_map = tmp_path / "map.csv"
    class_map.write_text("folder,class\nant,insect\nmoth,insect\nzebra,mammal\n")
    for data, option in ((f"folder:{image_folder}?class_map={class_map}", None), (f"folder:{image_folder}", class_map)):
        mapped = describe(data, class_map=option)
        assert f"class map: {class_map}" in mapped and re.search(r"^\s+insect\s+4$", mapped, re.M)
    with pytest.raises(SynthgapError, match=r"names a class map already; drop --class-map"):
        describe(f"folder:{image_folder}?class_map={class_map}", class_map=class_map)
    with pytest.raises(SynthgapError, match=r"a class map applies to class folders \(folder:DIR\)"):
        describe(f"generated:{image_folder}", class_map=class_map)
    with pytest.raises(SynthgapError, match=r"image folder not found"):
        describe(f"folder:{tmp_path / 'nothing'}")


def test_a_cifake_side_needs_a_data_root_from_the_option_or_the_environment(cifake_root, monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    with pytest.raises(SynthgapError, match=r"no data root: pass --data-root DIR or set SYNTHGAP_DATA_ROOT"):
        describe("cifake:real")
    text = describe("cifake:real", data_root=cifake_root)
    assert text.startswith(f"layout: CIFAKE, real side ({cifake_root / 'cifake'})")
    assert "cifake:real/train: 30 images, 10 classes" in text and "cifake:real/test: 30 images, 10 classes" in text
    assert "synthetic" not in text
    monkeypatch.setenv(DATA_ROOT_ENV, str(cifake_root))
    assert "cifake:synthetic/test: 30 images" in describe("cifake:synthetic")
    with pytest.raises(SynthgapError, match=r"unknown CIFAKE side 'fake'"):
        describe("cifake:fake")


def test_every_source_can_be_described(tmp_path, image_folder, cifake_root):
    """A source without a describer of its own is described by the splits its sides read (imagenet100 here)."""
    from tests.data.test_imagenet100 import wnids_cmc_order, write_tree

    imagenet = write_tree(tmp_path / "imagenet", {"train": 1, "val": 1}, wnids_cmc_order())
    saved = tmp_path / "saved"
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    images = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(4)]
    datasets.Dataset.from_dict({"img": images, "label": [0, 1, 0, 1]}, features=features).save_to_disk(str(saved))
    references = {
        "cifake": "cifake:real",
        "folder": f"folder:{image_folder}",
        "generated": f"generated:{write_generated(tmp_path / 'gen')}",
        "hf": f"hf:{saved}",
        "imagenet100": f"imagenet100:{imagenet}",
    }
    assert set(references) == set(SOURCES), "a new source: add a reference here"
    for source, reference in references.items():
        text = describe(reference, sample=4, data_root=cifake_root)
        assert " images, " in text, (source, text)
    text = describe(references["imagenet100"], sample=4)
    assert "imagenet100" not in DESCRIBERS and text.startswith(f"source: imagenet100:{imagenet}")
    assert f"imagenet100:{imagenet}/train: 100 images, 100 classes" in text
    assert f"imagenet100:{imagenet}/val: 100 images, 100 classes" in text


def test_a_mistyped_source_is_named_and_a_path_with_a_colon_is_a_folder(image_folder, tmp_path):
    with pytest.raises(SynthgapError, match=r"unknown data source 'generate'; choose from: "):
        describe(f"generate:{tmp_path}")
    colon = tmp_path / "set:one"
    image_folder.rename(colon)
    assert describe(colon).startswith(f"layout: class folders ({colon})")
    with pytest.raises(SynthgapError, match=r"no such folder: /nonexistent"):
        describe("/nonexistent")
