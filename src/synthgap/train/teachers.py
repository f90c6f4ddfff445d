"""Teachers: trained classifiers whose logits guide another model's training (distillation's soft labels).

A teacher maps images to logits over the data's classes, in the data's label order, and expects its inputs normalised
with the statistics it was trained with; a `Teacher` carries both, with a line saying what it is for the records.
An experiment's teacher comes from one of three places:

- the R baseline of the same seed, trained by the experiment itself and taken from its model cache (the experiment
  loads that one: it knows the run and the cache);
- a `synthgap train` checkpoint folder, or a model cache entry (`load_checkpoint_teacher`);
- a timm model with local safetensors weights, never a pickle (`load_timm_teacher`).

The last two come from outside the experiment, so their class list is checked against the data's before anything
trains: a teacher of other classes, or of the same classes in another order, would give every image a wrong soft
label. Their fingerprints (`checkpoint_fingerprint`, `timm_fingerprint`) hash the weights and what says how to use
them, so a changed teacher is a changed run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from synthgap.data.index import check_same_classes
from synthgap.data.transforms import Normalization, get_normalization
from synthgap.errors import SynthgapError
from synthgap.io import file_digest
from synthgap.models import ModelConfig, build_model
from synthgap.train.checkpoint import METADATA, checked_metadata, load_problem, load_weights

# timm's default input statistics (ImageNet's), for a timm model whose pretrained config names none
TIMM_MEAN = (0.485, 0.456, 0.406)
TIMM_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Teacher:
    """A loaded teacher: the model, the normalization its inputs need, and what it is (as records name it)."""

    model: nn.Module
    normalization: Normalization
    description: str


@dataclass(frozen=True)
class TimmSource:
    """A timm teacher as a spec gives it: model name, safetensors weights, optionally its input statistics (default:
    timm's for that model), its class list in label order and keyword arguments for `timm.create_model`."""

    name: str
    weights: Path
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    classes: Sequence[str] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def check_teacher_classes(teacher: Sequence[str] | None, data: Sequence[str], what: str) -> None:
    """The teacher's class list (None: unknown, nothing to check) must be the data's, in the same order, since the
    teacher's logit i is taken as the data's label i."""
    if teacher is not None:
        check_same_classes(teacher, data, what=f"{what} and the experiment's")


def checkpoint_classes(folder: Path, what: str) -> list[str] | None:
    """A checkpoint's class list in label order, from its metadata alone (no weights are read, so a dry run can check
    it); None when the metadata names none."""
    try:
        metadata = json.loads((Path(folder) / METADATA).read_text(encoding="utf-8"))
    except ValueError:
        raise SynthgapError(f"{what}: {METADATA} is not JSON") from None
    return metadata.get("classes") if isinstance(metadata, dict) else None


def checkpoint_fingerprint(folder: Path) -> str:
    """A hash of a checkpoint's metadata, which holds its weights' checksum and what says how to use them (model,
    classes, normalization)."""
    metadata = json.loads((Path(folder) / METADATA).read_text())
    return _digest(metadata)


def timm_fingerprint(settings: dict[str, Any], weights: Path) -> str:
    """A hash of a timm teacher's settings (as the spec gives them) and its weights' SHA-256."""
    return _digest({"settings": settings, "weights": file_digest(Path(weights))})


def _digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def checkpoint_model(metadata: dict[str, Any]) -> ModelConfig:
    """The model of a checkpoint: model cache entries hold its config as `model`; `synthgap train` checkpoints
    name the family there and keep the config under `config` (with the data's resolution and the class list)."""
    if isinstance(metadata.get("model"), dict):
        return ModelConfig.model_validate(metadata["model"])
    config = metadata["config"]
    return ModelConfig.model_validate(
        {**config["model"], "num_classes": len(metadata["classes"]), "image_size": config["data"]["resolution"]}
    )


def checkpoint_normalization(metadata: dict[str, Any]) -> Normalization:
    """The normalization a checkpoint's model was evaluated with (its recipe's test view; ImageNet's when the
    metadata names no recipe, as in model cache entries)."""
    recipe = (metadata.get("config") or {}).get("recipe") or {}
    return get_normalization(recipe.get("test_normalization") or recipe.get("normalization") or "imagenet")


def load_checkpoint_teacher(folder: Path, classes: Sequence[str], what: str) -> Teacher:
    """The teacher in a checkpoint folder (weights verified against their checksum), after its class list is checked
    against the data's `classes`; `what` names it in errors."""
    folder = Path(folder)
    metadata = checked_metadata(folder)
    check_teacher_classes(metadata.get("classes"), classes, what)
    config = checkpoint_model(metadata)
    model = build_model(config)
    load_weights(model, folder)
    return Teacher(model, checkpoint_normalization(metadata), f"checkpoint {folder} ({config.name})")


def load_timm_teacher(source: TimmSource, classes: Sequence[str], what: str) -> Teacher:
    """A timm model with one output per data class, its weights from a safetensors file (never a pickle), after its
    class list (when given) is checked against the data's `classes`; `what` names it in errors."""
    import timm  # only a timm teacher needs it
    from safetensors.torch import load_file

    check_teacher_classes(source.classes, classes, what)
    model = timm.create_model(source.name, pretrained=False, num_classes=len(classes), **source.kwargs)
    try:
        model.load_state_dict(load_file(str(source.weights)))
    except (OSError, RuntimeError) as exc:
        raise SynthgapError(f"timm teacher {source.name}: cannot load {source.weights} ({load_problem(exc)})") from None
    mean = source.mean or tuple(model.pretrained_cfg.get("mean", TIMM_MEAN))
    std = source.std or tuple(model.pretrained_cfg.get("std", TIMM_STD))
    return Teacher(model, Normalization(tuple(mean), tuple(std)), f"timm {source.name} ({source.weights})")
