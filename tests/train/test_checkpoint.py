import pytest
import torch

from synthgap.errors import SynthgapError
from synthgap.models import ModelConfig, build_model
from synthgap.train.checkpoint import METADATA, WEIGHTS, has_checkpoint, load_checkpoint, load_weights, save_checkpoint


def test_roundtrip_restores_every_tensor_and_the_metadata(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.125))
    save_checkpoint(tmp_path, model, {"top1": 12.5, "config": {"width": 0.125}})
    fresh = build_model(ModelConfig(width=0.125))
    metadata = load_weights(fresh, tmp_path)
    assert metadata["top1"] == 12.5
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))
    # safetensors, not a pickle: the file starts with an 8-byte little-endian header length followed by JSON.
    assert (tmp_path / WEIGHTS).read_bytes()[8:9] == b"{"


def test_weights_without_metadata_are_an_interrupted_save(tmp_path):
    save_checkpoint(tmp_path, build_model(ModelConfig(width=0.125)), {})
    (tmp_path / METADATA).unlink()
    assert not has_checkpoint(tmp_path)
    with pytest.raises(SynthgapError, match="no complete checkpoint"):
        load_checkpoint(tmp_path)


def test_loading_into_a_different_model_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path, build_model(ModelConfig(width=0.125)), {})
    with pytest.raises(SynthgapError, match="does not fit this model"):
        load_weights(build_model(ModelConfig(width=0.25)), tmp_path)
