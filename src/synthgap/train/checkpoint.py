"""Checkpoints as safetensors weights plus a JSON file of metadata (config, metrics).

The JSON is written last and acts as the commit marker: a folder with weights but no JSON is an interrupted save
and is never loaded. Nothing is unpickled, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from synthgap.errors import SynthgapError
from synthgap.io import atomic_write_json

WEIGHTS = "model.safetensors"
METADATA = "model.json"


def save_checkpoint(folder: Path, model: nn.Module, metadata: dict[str, Any]) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METADATA).unlink(missing_ok=True)  # un-commit any older checkpoint before replacing its weights
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = folder / f".{WEIGHTS}.{os.getpid()}.tmp"
    try:
        save_file(state, str(tmp))
        os.replace(tmp, folder / WEIGHTS)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_json(folder / METADATA, metadata)


def has_checkpoint(folder: Path) -> bool:
    return (Path(folder) / WEIGHTS).is_file() and (Path(folder) / METADATA).is_file()


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    folder = Path(folder)
    if not has_checkpoint(folder):
        raise SynthgapError(f"no complete checkpoint in {folder} (expected {WEIGHTS} and {METADATA})")
    return load_file(str(folder / WEIGHTS)), json.loads((folder / METADATA).read_text())


def load_weights(model: nn.Module, folder: Path) -> dict[str, Any]:
    state, metadata = load_checkpoint(folder)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise SynthgapError(f"checkpoint {folder} does not fit this model: {first}") from None
    return metadata
