"""unCLIP image variations on a tiny local StableUnCLIPImg2ImgPipeline."""

import hashlib
import json

import pytest

from synthgap.data.sources import open_source
from synthgap.errors import SynthgapError
from synthgap.generate.output import MANIFEST
from synthgap.generate.unclip import UnclipConfig, generate_unclip
from tests.generate.tiny_pipelines import png_files


def unclip_config(model, out, source, **changes) -> UnclipConfig:
    settings = {"per_class": 2, "variations": 2, "size": 32, "steps": 2, "batch_size": 3, "noise_level": 10}
    return UnclipConfig(out=out, source=source, model=str(model), **{**settings, **changes})


def test_variations_of_each_real_image_with_their_source_in_the_manifest(tiny_unclip, image_folder, tmp_path):
    out = tmp_path / "gen"
    source = f"folder:{image_folder}"
    result = generate_unclip(unclip_config(tiny_unclip, out, source), progress=False)
    real = open_source(source)
    # ant has 3 real images (limit 2), moth 1, zebra 2; 2 variations each
    assert result.total_images == 2 * 2 + 1 * 2 + 2 * 2 == result.written
    records = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert [r["class"] for r in records] == ["ant"] * 4 + ["moth"] * 2 + ["zebra"] * 4
    ant_sources = [str(p) for p, label in zip(real.paths, real.labels, strict=True) if label == 0][:2]
    assert [r["source"] for r in records[:4]] == [ant_sources[0]] * 2 + [ant_sources[1]] * 2
    assert [r["variation"] for r in records[:4]] == [0, 1, 0, 1]
    files = png_files(out)
    assert all(hashlib.sha256(files[r["file"]]).hexdigest() == r["sha256"] for r in records)
    assert records[0]["sha256"] != records[1]["sha256"]  # two variations of one image differ
    assert {r["noise_level"] for r in records} == {10}
    generated = open_source(f"generated:{out}")
    assert generated.classes == real.classes and len(generated) == 10


def test_unclip_runs_are_identical_across_shards(tiny_unclip, image_folder, tmp_path):
    source = f"folder:{image_folder}"
    whole = tmp_path / "whole"
    generate_unclip(unclip_config(tiny_unclip, whole, source, per_class=1), progress=False)
    split = tmp_path / "split"
    for shard in ("1/2", "0/2"):
        generate_unclip(unclip_config(tiny_unclip, split, source, per_class=1, shard=shard), progress=False)
    assert png_files(split) == png_files(whole) and len(png_files(whole)) == 6
    assert (split / MANIFEST).read_text() == (whole / MANIFEST).read_text()


def test_unclip_refuses_a_text_to_image_model_and_bad_options(tiny_text2img, image_folder, tmp_path):
    with pytest.raises(SynthgapError, match="not an unCLIP image-variation pipeline"):
        generate_unclip(unclip_config(tiny_text2img, tmp_path / "a", f"folder:{image_folder}"), progress=False)
    with pytest.raises(SynthgapError, match="noise-level"):
        generate_unclip(unclip_config(tiny_text2img, tmp_path / "b", f"folder:{image_folder}", noise_level=1000))
