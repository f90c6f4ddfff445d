"""`synthgap generate ... --backend ray --shards N`: shards as tasks on a local Ray instance, then the merge."""

from __future__ import annotations

import pytest

from synthgap.errors import SynthgapError
from synthgap.generate.distribute import ShardFailure, generate, generate_on_ray, run_shard
from synthgap.generate.output import MANIFEST
from synthgap.generate.text2img import generate_text2img
from tests.generate.test_text2img import manifest_lines
from tests.generate.tiny_pipelines import png_files, tiny_config
from tests.test_bad_inputs import synthgap


@pytest.mark.slow
def test_ray_shards_give_the_one_process_images(reference_set, tiny_text2img, tmp_path):
    import ray

    out = tmp_path / "gen"
    try:
        results, merged = generate_on_ray(generate_text2img, tiny_config(tiny_text2img, out), 3, cpus=1)
    finally:
        ray.shutdown()
    assert sorted(str(r.shard) for r in results) == ["0/3", "1/3", "2/3"]
    assert sum(r.written for r in results) == 30 and merged.written == 0
    assert merged.manifest == out / MANIFEST
    assert png_files(out) == png_files(reference_set)
    assert manifest_lines(out) == manifest_lines(reference_set)


def test_a_failing_shard_comes_back_as_one_message(tiny_text2img, tmp_path):
    bad = tiny_config(tiny_text2img, tmp_path / "gen", steps=0, shard="1/2")
    failure = run_shard(generate_text2img, bad)
    assert isinstance(failure, ShardFailure) and failure.shard == "1/2"
    assert "--steps must be at least 1" in failure.message


def test_shard_options_are_checked_before_anything_starts(tiny_text2img, tmp_path, capsys):
    base = ["generate", "text2img", "--model", str(tiny_text2img), "--out", str(tmp_path / "gen"), "-q"]
    code, _, err = synthgap(capsys, *base, "--shards", "2")
    assert code == 2 and "--shards and --address need --backend ray" in err
    code, _, err = synthgap(capsys, *base, "--backend", "ray", "--shard", "1/2")
    assert code == 2 and "with --backend ray give --shards N" in err
    code, _, err = synthgap(capsys, *base, "--backend", "kubernetes")
    assert code == 2 and "unknown backend 'kubernetes' for generate" in err
    code, _, err = synthgap(capsys, *base, "--backend", "ray", "--shards", "0")
    assert code == 2 and "--shards must be at least 1" in err
    with pytest.raises(SynthgapError, match="--shards must be at least 1"):
        generate_on_ray(generate_text2img, tiny_config(tiny_text2img, tmp_path / "gen"), 0)


def test_the_backend_switch_runs_one_shard_here_and_refuses_what_only_ray_takes(tmp_path):
    calls = []

    def fake_run(config, progress):
        calls.append((config.shard, progress))
        return f"result of {config.shard}"

    config = tiny_config("unused-model", tmp_path / "gen")
    assert generate(fake_run, config, progress=False) == (["result of 0/1"], None)
    assert calls == [("0/1", False)]
    refused = [
        ({"shards": 2}, "--shards and --address need --backend ray"),
        ({"address": "ray://x"}, "--shards and --address need --backend ray"),
        ({"backend": "dask"}, "unknown backend 'dask' for generate; choose from: local, ray"),
    ]
    for options, message in refused:
        with pytest.raises(SynthgapError, match=message):
            generate(fake_run, config, **options)
    with pytest.raises(SynthgapError, match="with --backend ray give --shards N"):
        generate(fake_run, tiny_config("unused-model", tmp_path / "gen", shard="1/2"), backend="ray")
    assert len(calls) == 1


def test_paths_reach_the_workers_absolute(tiny_text2img, tmp_path, monkeypatch):
    """Workers of a cluster do not start in the driver's directory: the output folder and files go absolute."""
    from pathlib import Path

    from synthgap.generate.distribute import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    Path("classes.txt").write_text("cat\ndog\n")
    config = tiny_config(tiny_text2img, Path("gen"), classes="classes.txt")
    absolute = with_absolute_paths(config)
    assert absolute.out == tmp_path / "gen" and absolute.classes == str(tmp_path / "classes.txt")
    assert with_absolute_paths(tiny_config(tiny_text2img, Path("gen"))).classes == "cifar10"  # a name stays
    from synthgap.generate.img2img import Img2ImgConfig

    Path("saved").mkdir()
    sources = {
        "hf:saved?split=train": f"hf:{tmp_path / 'saved'}?split=train",
        "hf:user/name": "hf:user/name",
        "folder:saved": f"folder:{tmp_path / 'saved'}",
        "cifake:real": "cifake:real",
    }
    for source, expected in sources.items():
        assert with_absolute_paths(Img2ImgConfig(out=Path("gen"), source=source, model="m")).source == expected


@pytest.mark.slow
def test_ray_shards_of_an_img2img_run_give_the_one_process_images(tiny_text2img, image_folder, tmp_path, monkeypatch):
    import ray

    from synthgap.generate.img2img import Img2ImgConfig, generate_img2img

    settings = {"per_class": 2, "variations": 2, "size": 32, "steps": 4, "batch_size": 3}
    one = tmp_path / "one"
    generate_img2img(
        Img2ImgConfig(out=one, source=f"folder:{image_folder}", model=str(tiny_text2img), **settings), progress=False
    )
    monkeypatch.chdir(image_folder.parent)  # a relative source folder reaches the workers absolute
    config = Img2ImgConfig(
        out=tmp_path / "ray", source=f"folder:{image_folder.name}", model=str(tiny_text2img), **settings
    )
    try:
        results, merged = generate_on_ray(generate_img2img, config, 2, cpus=1)
    finally:
        ray.shutdown()
    assert sum(r.written for r in results) == 10 and merged.manifest is not None
    assert png_files(tmp_path / "ray") == png_files(one)
