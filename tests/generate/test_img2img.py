"""img2img from real images on the tiny local pipeline: the manifest, the source's classes, shards, resume, errors."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from synthgap.data.sources import CIFAR10_CLASSES, open_source
from synthgap.errors import SynthgapError
from synthgap.generate.img2img import Img2ImgConfig, Img2ImgGenerator, generate_img2img
from synthgap.generate.output import MANIFEST, PARTS
from tests.generate.tiny_pipelines import png_files


def img2img_config(model, out, source, **changes) -> Img2ImgConfig:
    settings = {"per_class": 2, "variations": 2, "size": 32, "steps": 4, "batch_size": 3, "seed": 3}
    return Img2ImgConfig(out=out, source=source, model=str(model), **{**settings, **changes})


def records(out):
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]


def test_img2img_from_a_nested_folder_records_source_strength_and_variation(tiny_text2img, image_folder, tmp_path):
    out = tmp_path / "gen"
    source = f"folder:{image_folder}"
    result = generate_img2img(img2img_config(tiny_text2img, out, source, strength=0.5), progress=False)
    real = open_source(source)
    assert result.total_images == result.written == 2 * 2 + 1 * 2 + 2 * 2  # ant 3 (limit 2, one nested), moth 1
    lines = records(out)
    assert [r["class"] for r in lines] == ["ant"] * 4 + ["moth"] * 2 + ["zebra"] * 4
    ants = [str(p) for p, label in zip(real.paths, real.labels, strict=True) if label == 0][:2]
    assert [r["source"] for r in lines[:4]] == [ants[0]] * 2 + [ants[1]] * 2
    assert [r["variation"] for r in lines[:4]] == [0, 1, 0, 1]
    assert {r["strength"] for r in lines} == {0.5} and {r["prompt"] for r in lines[:4]} == {"a photo of an ant"}
    files = png_files(out)
    assert all(hashlib.sha256(files[r["file"]]).hexdigest() == r["sha256"] for r in lines)
    assert lines[0]["sha256"] != lines[1]["sha256"]  # two variations of one image differ
    generated = open_source(f"generated:{out}")
    assert generated.classes == real.classes and len(generated) == 10
    assert json.loads((out / "generate.json").read_text())["kind"] == "img2img"


def test_img2img_from_cifake_real_keeps_its_classes_and_a_strength_changes_the_images(
    tiny_text2img, cifake_root, tmp_path
):
    low = generate_img2img(
        img2img_config(
            tiny_text2img,
            tmp_path / "low",
            "cifake:real",
            per_class=1,
            variations=1,
            data_root=cifake_root,
            strength=0.25,
        ),
        progress=False,
    )
    assert low.total_images == 10
    assert [r["class"] for r in records(tmp_path / "low")] == list(CIFAR10_CLASSES)
    generate_img2img(
        img2img_config(
            tiny_text2img,
            tmp_path / "high",
            "cifake:real",
            per_class=1,
            variations=1,
            data_root=cifake_root,
            strength=1.0,
        ),
        progress=False,
    )
    assert png_files(tmp_path / "low") != png_files(tmp_path / "high")


def test_img2img_shards_and_an_interrupted_run_give_the_same_bytes(tiny_text2img, image_folder, tmp_path, monkeypatch):
    source = f"folder:{image_folder}"
    whole = tmp_path / "whole"
    generate_img2img(img2img_config(tiny_text2img, whole, source), progress=False)
    split = tmp_path / "split"
    for shard in ("1/2", "0/2"):
        generate_img2img(img2img_config(tiny_text2img, split, source, shard=shard), progress=False)
    assert png_files(split) == png_files(whole)
    assert (split / MANIFEST).read_text() == (whole / MANIFEST).read_text()

    # a run stopped after its second batch (as by a kill: images and part lines of two batches on disk)
    cut = tmp_path / "cut"
    real_call = Img2ImgGenerator.make_images
    calls = []

    def stop_at_third_batch(self, batch, generators):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_call(self, batch, generators)

    monkeypatch.setattr(Img2ImgGenerator, "make_images", stop_at_third_batch)
    with pytest.raises(KeyboardInterrupt):
        generate_img2img(img2img_config(tiny_text2img, cut, source), progress=False)
    assert len(png_files(cut)) == 6 and not (cut / MANIFEST).exists()
    monkeypatch.setattr(Img2ImgGenerator, "make_images", real_call)
    rerun = generate_img2img(img2img_config(tiny_text2img, cut, source), progress=False)
    assert (rerun.written, rerun.already_done) == (4, 6)
    assert png_files(cut) == png_files(whole) and (cut / MANIFEST).read_text() == (whole / MANIFEST).read_text()
    assert len((cut / PARTS / "0-of-1.jsonl").read_text().splitlines()) == 10


def test_img2img_refuses_bad_strength_other_classes_and_other_settings(tiny_text2img, image_folder, tmp_path):
    source = f"folder:{image_folder}"
    for strength in (0, -0.1, 1.5):
        with pytest.raises(SynthgapError, match=r"--strength must be in \(0, 1\]"):
            generate_img2img(img2img_config(tiny_text2img, tmp_path / "a", source, strength=strength))
    listed = tmp_path / "classes.txt"
    listed.write_text("ant\nmoth\nbee\n")
    with pytest.raises(SynthgapError, match="not in the list: zebra; not in the source: bee"):
        generate_img2img(img2img_config(tiny_text2img, tmp_path / "b", source, classes=str(listed)))
    listed.write_text("zebra\nant\nmoth\n")  # the same classes in another order: names from the list, order from source
    generate_img2img(
        img2img_config(tiny_text2img, tmp_path / "c", source, classes=str(listed), per_class=1, variations=1),
        progress=False,
    )
    assert [r["class"] for r in records(tmp_path / "c")] == ["ant", "moth", "zebra"]
    with pytest.raises(SynthgapError, match=r"other settings \(strength: 0.75 → 0.5\)"):
        generate_img2img(
            img2img_config(
                tiny_text2img, tmp_path / "c", source, classes=str(listed), per_class=1, variations=1, strength=0.5
            ),
            progress=False,
        )


@pytest.mark.slow
def test_img2img_cli_errors_are_one_line(tiny_text2img, image_folder, tmp_path):
    code = "import sys; from synthgap.cli import main; sys.argv = ['synthgap'] + sys.argv[1:]; main()"
    args = [
        "generate",
        "img2img",
        "--model",
        str(tiny_text2img),
        "--source",
        f"folder:{image_folder}",
        "--out",
        str(tmp_path / "gen"),
        "--size",
        "32",
        "--strength",
        "1.2",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "synthgap: error: --strength must be in (0, 1] (1: start from pure noise), got 1.2"
    ]


def test_img2img_from_an_hf_dataset_equals_the_same_images_as_files(tiny_text2img, image_folder, tmp_path):
    """A real side read from a `datasets` dataset (rows, not files) gives the same images as its files, and the
    manifest names each source row."""
    import datasets

    real = open_source(f"folder:{image_folder}")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(real.classes))})
    rows = {"image": [{"bytes": p.read_bytes(), "path": p.name} for p in real.paths], "label": real.labels.tolist()}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "saved"))
    from_files = generate_img2img(
        img2img_config(tiny_text2img, tmp_path / "files", f"folder:{image_folder}"), progress=False
    )
    from_rows = generate_img2img(
        img2img_config(tiny_text2img, tmp_path / "rows", f"hf:{tmp_path / 'saved'}"), progress=False
    )
    assert from_rows.total_images == from_files.total_images == 10
    assert png_files(tmp_path / "rows") == png_files(tmp_path / "files")
    assert records(tmp_path / "rows")[0]["source"] == f"hf:{tmp_path / 'saved'}[train] row 0"
