"""Teachers from outside an experiment: class-list checks, a checkpoint's model and view, loading and fingerprints."""

from __future__ import annotations

import json

import pytest
import torch

from synthgap.data.transforms import get_normalization
from synthgap.errors import SynthgapError
from synthgap.models import ModelConfig, build_model
from synthgap.train.checkpoint import METADATA, save_checkpoint
from synthgap.train.teachers import (
    TimmSource,
    check_teacher_classes,
    checkpoint_classes,
    checkpoint_fingerprint,
    checkpoint_model,
    checkpoint_normalization,
    load_checkpoint_teacher,
    load_timm_teacher,
    timm_fingerprint,
)


def test_a_teacher_must_list_the_datas_classes_in_the_datas_order():
    check_teacher_classes(None, ("a", "b"), "teacher x")  # unknown: nothing to check
    check_teacher_classes(["a", "b"], ("a", "b"), "teacher x")
    with pytest.raises(SynthgapError, match=r"teacher x and the experiment's data list the same classes in a differ"):
        check_teacher_classes(["b", "a"], ("a", "b"), "teacher x")  # logit 0 would be taken as class a
    with pytest.raises(SynthgapError, match=r"only in the first: \['z'\]; only in the second: \['b'\]"):
        check_teacher_classes(["a", "z"], ("a", "b"), "teacher x")


def test_a_checkpoints_model_and_view_from_either_kind_of_metadata():
    cached = {"model": {"name": "resnet34", "num_classes": 3, "image_size": 32}}  # a model cache entry
    assert checkpoint_model(cached) == ModelConfig(name="resnet34", num_classes=3, image_size=32)
    assert checkpoint_normalization(cached) == get_normalization("imagenet")
    trained = {  # a `synthgap train` checkpoint: the family in config.model, the size and classes beside it
        "classes": ["a", "b"],
        "config": {"model": {"name": "vit_tiny"}, "data": {"resolution": 64}, "recipe": {"normalization": "cifar10"}},
    }
    assert checkpoint_model(trained) == ModelConfig(name="vit_tiny", num_classes=2, image_size=64)
    assert checkpoint_normalization(trained) == get_normalization("cifar10")


def test_a_checkpoint_teacher_is_loaded_after_its_classes_are_checked(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(width=0.125, num_classes=2, image_size=32)
    model = build_model(config)
    save_checkpoint(tmp_path, model, {"classes": ["a", "b"], "model": config.model_dump(mode="json")})
    assert checkpoint_classes(tmp_path, "t") == ["a", "b"]
    teacher = load_checkpoint_teacher(tmp_path, ("a", "b"), "t")
    assert teacher.description == f"checkpoint {tmp_path} (resnet18)"
    loaded = teacher.model.state_dict()
    assert all(torch.equal(value, loaded[key]) for key, value in model.state_dict().items())
    with pytest.raises(SynthgapError, match="t and the experiment's data have different classes"):
        load_checkpoint_teacher(tmp_path, ("a", "c"), "t")
    before = checkpoint_fingerprint(tmp_path)
    metadata = json.loads((tmp_path / METADATA).read_text())
    (tmp_path / METADATA).write_text(json.dumps({**metadata, "classes": ["b", "a"]}))
    assert checkpoint_fingerprint(tmp_path) != before  # what says how to use the weights is part of the teacher


def test_a_timm_teacher_with_its_weights_statistics_and_fingerprint(tmp_path):
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "t.safetensors"
    save_file(
        {k: v.contiguous() for k, v in timm.create_model("resnet10t", num_classes=2).state_dict().items()}, weights
    )
    source = TimmSource("resnet10t", weights, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    teacher = load_timm_teacher(source, ("a", "b"), "timm teacher resnet10t")
    assert teacher.normalization.mean == (0.5, 0.5, 0.5) and teacher.description == f"timm resnet10t ({weights})"
    with pytest.raises(SynthgapError, match="cannot load"):  # three outputs: the weights hold two
        load_timm_teacher(source, ("a", "b", "c"), "timm teacher resnet10t")
    settings = {"timm": "resnet10t"}
    assert timm_fingerprint(settings, weights) == timm_fingerprint(dict(settings), weights)
    assert timm_fingerprint({"timm": "resnet18"}, weights) != timm_fingerprint(settings, weights)
