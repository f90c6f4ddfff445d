"""Checkpoints as safetensors weights plus a JSON file of metadata (config, metrics) and the weights' checksum.

The JSON is written last and acts as the commit marker: a folder with weights but no JSON is an interrupted save
and is never loaded. It records the SHA-256 and size of the weights file, and every load checks them, so a damaged
file is never loaded silently. Nothing is unpickled, so a checkpoint from an untrusted source cannot run code.

Checkpoints written before checksums existed have none: they cannot be verified, `verify_checkpoint` returns False
for them and loading them raises `CorruptCheckpointError`, so a cached model of that age is trained again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from synthgap.errors import CorruptCheckpointError, SynthgapError, warn
from synthgap.io import atomic_write_json, save_safetensors, verify_file

WEIGHTS = "model.safetensors"
METADATA = "model.json"
CHECKSUM_KEY = "weights_checksum"  # reserved key of model.json; load_checkpoint returns the metadata without it


def save_checkpoint(folder: Path, model: nn.Module, metadata: dict[str, Any]) -> None:
    """Weights first, then model.json with the caller's metadata and the weights' checksum (the commit marker)."""
    if CHECKSUM_KEY in metadata:
        raise ValueError(f"{CHECKSUM_KEY!r} is reserved for the checkpoint's own checksum")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METADATA).unlink(missing_ok=True)  # un-commit any older checkpoint before replacing its weights
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    record = save_safetensors(state, folder / WEIGHTS)
    atomic_write_json(folder / METADATA, {**metadata, CHECKSUM_KEY: {"file": WEIGHTS, **record}})


def has_checkpoint(folder: Path) -> bool:
    """Both files are there (cheap; says nothing about their integrity: see `verify_checkpoint`)."""
    return (Path(folder) / WEIGHTS).is_file() and (Path(folder) / METADATA).is_file()


def checked_metadata(folder: Path) -> dict[str, Any]:
    """model.json of a complete checkpoint, once its weights match the checksum it records; raises
    `CorruptCheckpointError` naming what is wrong otherwise."""
    folder = Path(folder)
    try:
        metadata = json.loads((folder / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptCheckpointError(folder, f"{METADATA} cannot be read ({type(exc).__name__})") from None
    if not isinstance(metadata, dict):
        raise CorruptCheckpointError(folder, f"{METADATA} is not a JSON object")
    if CHECKSUM_KEY not in metadata:
        reason = f"{METADATA} has no checksum (written by an older synthgap), so its weights cannot be verified"
        raise CorruptCheckpointError(folder, reason)
    reason = verify_file(folder / WEIGHTS, metadata[CHECKSUM_KEY])
    if reason is not None:
        raise CorruptCheckpointError(folder, f"{WEIGHTS} is corrupt ({reason})")
    return metadata


def verify_checkpoint(folder: Path) -> bool:
    """True when `folder` holds a complete checkpoint whose weights match the checksum in model.json.

    Reads the weights once (~30 ms for a full ResNet-18). A missing or interrupted checkpoint is False without a
    word; a damaged or unverifiable one (no checksum: written by an older synthgap) is False with one warning line.
    Call it before reusing a cached model, and train the model again when it is False.
    """
    if not has_checkpoint(folder):
        return False
    try:
        checked_metadata(folder)
    except CorruptCheckpointError as exc:
        warn(f"checkpoint {folder} is not used: {exc.reason}")
        return False
    return True


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata) of a verified checkpoint; `CorruptCheckpointError` when it fails the check."""
    folder = Path(folder)
    if not has_checkpoint(folder):
        raise SynthgapError(f"no complete checkpoint in {folder} (expected {WEIGHTS} and {METADATA})")
    metadata = checked_metadata(folder)
    try:
        state = load_file(str(folder / WEIGHTS))
    except SafetensorError as exc:  # matches its checksum yet does not parse: damaged before it was hashed
        raise CorruptCheckpointError(folder, f"{WEIGHTS} cannot be parsed ({exc})") from None
    metadata.pop(CHECKSUM_KEY)
    return state, metadata


def load_weights(model: nn.Module, folder: Path) -> dict[str, Any]:
    """Load a verified checkpoint into `model` (strict) and return its metadata."""
    state, metadata = load_checkpoint(folder)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SynthgapError(f"checkpoint {folder} does not fit this model: {load_problem(exc)}") from None
    return metadata


def load_problem(exc: Exception) -> str:
    """The first specific problem of a failed `load_state_dict` (torch's first line, "Error(s) in loading state_dict
    for ResNet:", says nothing), with how many others there are: one line for an error message."""
    lines = [line.strip().rstrip(".") for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if not lines[0].startswith("Error(s) in loading state_dict") or len(lines) < 2:
        return lines[0]
    problems = [part.strip() for line in lines[1:] for part in line.split("\t") if part.strip()]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0].rstrip(".") + more
