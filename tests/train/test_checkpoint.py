import json
import os

import pytest
import torch
from torch import nn

from synthgap.errors import CorruptCheckpointError, SynthgapError
from synthgap.models import ModelConfig, build_model
from synthgap.train.checkpoint import (
    CHECKSUM_KEY,
    METADATA,
    WEIGHTS,
    has_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    verify_checkpoint,
)


def test_roundtrip_restores_every_tensor_and_the_metadata(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.125))
    save_checkpoint(tmp_path, model, {"top1": 12.5, "config": {"width": 0.125}})
    fresh = build_model(ModelConfig(width=0.125))
    metadata = load_weights(fresh, tmp_path)
    assert metadata == {"top1": 12.5, "config": {"width": 0.125}}  # the checksum entry is the checkpoint's own
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))
    # safetensors, not a pickle: the file starts with an 8-byte little-endian header length followed by JSON.
    assert (tmp_path / WEIGHTS).read_bytes()[8:9] == b"{"


def test_weights_without_metadata_are_an_interrupted_save(tmp_path):
    save_checkpoint(tmp_path, build_model(ModelConfig(width=0.125)), {})
    (tmp_path / METADATA).unlink()
    assert not has_checkpoint(tmp_path)
    assert not verify_checkpoint(tmp_path)
    with pytest.raises(SynthgapError, match="no complete checkpoint"):
        load_checkpoint(tmp_path)


def test_loading_into_a_different_model_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path, build_model(ModelConfig(width=0.125)), {})
    with pytest.raises(SynthgapError, match="does not fit this model"):
        load_weights(build_model(ModelConfig(width=0.25)), tmp_path)


# --- integrity: a damaged checkpoint is never loaded silently ------------------------------------------------------


def small_model(seed: int = 0) -> nn.Module:
    """~70 KB of weights (a plain module, independent of the model builders): room to damage its middle."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(128, 128), nn.BatchNorm1d(128), nn.Linear(128, 10))


def overwrite_middle(path, size: int = 8192) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle - size // 2 : middle + size // 2] = os.urandom(size)
    path.write_bytes(bytes(data))


def test_a_saved_checkpoint_records_the_checksum_of_its_weights(tmp_path):
    save_checkpoint(tmp_path, small_model(), {"seconds": 1.0})
    record = json.loads((tmp_path / METADATA).read_text())[CHECKSUM_KEY]
    assert record["bytes"] == (tmp_path / WEIGHTS).stat().st_size and len(record["sha256"]) == 64
    assert verify_checkpoint(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_reserved_metadata_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match=CHECKSUM_KEY):
        save_checkpoint(tmp_path, small_model(), {CHECKSUM_KEY: "mine"})


def _overwrite_8k(folder):
    overwrite_middle(folder / WEIGHTS)


def _truncate(folder):
    path = folder / WEIGHTS
    path.write_bytes(path.read_bytes()[:-100])


def _invalid_json(folder):
    (folder / METADATA).write_text('{"seconds": 1.0, ')


def _json_list(folder):
    (folder / METADATA).write_text("[1, 2]")


def _legacy(folder):
    """model.json as synthgap wrote it before checksums: the weights cannot be verified."""
    metadata = json.loads((folder / METADATA).read_text())
    del metadata[CHECKSUM_KEY]
    (folder / METADATA).write_text(json.dumps(metadata))


DAMAGE = {
    "8k-overwritten": (_overwrite_8k, "checksum mismatch"),
    "truncated": (_truncate, "size mismatch"),
    "invalid-json": (_invalid_json, "model.json cannot be read"),
    "json-not-object": (_json_list, "not a JSON object"),
    "legacy": (_legacy, "no checksum"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_checkpoint_fails_verification_and_loading(tmp_path, caplog, damage):
    corrupt, reason = DAMAGE[damage]
    save_checkpoint(tmp_path, small_model(), {"seconds": 1.0})
    corrupt(tmp_path)
    assert has_checkpoint(tmp_path)  # both files are there: only the check tells

    with caplog.at_level("WARNING", logger="synthgap"):
        assert not verify_checkpoint(tmp_path)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"synthgap: warning: checkpoint {tmp_path} is not used: ") and reason in warning

    fresh = small_model(seed=1)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(CorruptCheckpointError, match=reason) as caught:
        load_weights(fresh, tmp_path)
    assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())  # nothing was loaded


def test_a_checkpoint_saved_again_over_a_damaged_one_is_valid(tmp_path):
    save_checkpoint(tmp_path, small_model(), {})
    overwrite_middle(tmp_path / WEIGHTS)
    save_checkpoint(tmp_path, small_model(seed=2), {"run": "again"})
    assert verify_checkpoint(tmp_path)
    assert load_weights(small_model(), tmp_path) == {"run": "again"}


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_checkpoint_files_get_the_umask_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "ckpt", small_model(), {})
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "ckpt").iterdir()}
    assert modes == {WEIGHTS: mode, METADATA: mode}


def test_a_checkpoint_of_another_shape_names_the_first_mismatch(tmp_path):
    from synthgap.errors import SynthgapError
    from synthgap.models import ModelConfig, build_model
    from synthgap.train.checkpoint import load_weights, save_checkpoint

    save_checkpoint(tmp_path / "narrow", build_model(ModelConfig(width=0.125)), {"classes": ["a", "b"]})
    with pytest.raises(SynthgapError) as caught:
        load_weights(build_model(ModelConfig(width=0.25)), tmp_path / "narrow")
    message = str(caught.value)
    head = f"checkpoint {tmp_path / 'narrow'} does not fit this model: size mismatch for conv1.weight"
    assert message.startswith(head)
    assert "torch.Size([8, 3, 3, 3])" in message and message.endswith(" more)") and "\n" not in message
