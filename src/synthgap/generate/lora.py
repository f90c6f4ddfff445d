"""LoRA folders for the generators: checked against the model before anything is loaded, applied with diffusers'
`load_lora_weights`, and recorded in manifests by checksum.

A LoRA folder holds ``pytorch_lora_weights.safetensors`` (the diffusers layout, as `synthgap generate adapt` and
diffusers' own training scripts write it). Written by `synthgap generate adapt` it also holds ``adapt.json`` (the
settings) and ``training.json`` (written last: the base model's configs, the rank, the target modules, the loss per
epoch and each weights file's sha256); with ``--one-per-class`` each class has its own sub-folder and the generator
switches LoRA with the class.

What is refused, each with one line: weights stored only as pickles; an unfinished adapt run; a LoRA trained on a base
model whose UNet or text-encoder configs differ from the model's; a rank that differs from the one recorded; target
modules the model lacks or whose shapes differ (checked on the loaded pipeline before `load_lora_weights`, which
would otherwise skip unknown keys with a warning).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthgap.errors import SynthgapError
from synthgap.generate.models import PICKLE_SUFFIXES, ResolvedModel
from synthgap.generate.plan import Item, runs_by_class
from synthgap.generate.quiet import library_bars_off
from synthgap.io import file_digest

if TYPE_CHECKING:
    import torch

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
ADAPT_SETTINGS = "adapt.json"
ADAPT_RESULT = "training.json"
BASE_COMPONENTS = ("unet", "text_encoder")  # what a LoRA adapts: their configs name the base model it fits
LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight", ".lora_A.bias", ".lora_B.bias", ".alpha")


@dataclass
class LoraFolder:
    """A checked LoRA folder: weights file(s) by class id (None: one for every class) and the checksum."""

    path: Path
    weights: dict[str | None, Path]
    sha256: str
    per_class: bool = False
    loaded: set[str] = field(default_factory=set)

    def adapter(self, class_id: str | None) -> str:
        return "synthgap" if class_id is None else f"synthgap_{list(self.weights).index(class_id)}"

    def use(self, pipe: Any, class_id: str | None, scale: float) -> None:
        """Make the class's LoRA (or the only one) the active adapter at `scale`."""
        pipe.set_adapters([self.adapter(class_id)], adapter_weights=[scale])


def base_configs(model_folder: Path) -> dict[str, dict[str, Any]]:
    """The configs of the components a LoRA adapts, without diffusers' private keys (versions, class names)."""
    configs = {}
    for component in BASE_COMPONENTS:
        path = model_folder / component / "config.json"
        if path.is_file():
            raw = json.loads(path.read_text(encoding="utf-8"))
            configs[component] = {k: v for k, v in raw.items() if not k.startswith("_") and k != "transformers_version"}
    return configs


def open_lora(folder: Path, model: ResolvedModel, class_ids: list[str]) -> LoraFolder:
    """Check a LoRA folder against the model (by config) and the classes; load nothing."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SynthgapError(f"LoRA folder not found: {folder}")
    settings = _read_json(folder / ADAPT_SETTINGS)
    if settings is None:  # a LoRA from elsewhere: one weights file
        weights = {None: _weights_file(folder)}
        return LoraFolder(folder, weights, file_digest(weights[None]))
    result = _read_json(folder / ADAPT_RESULT)
    if result is None:
        raise SynthgapError(
            f"{folder} holds an unfinished `synthgap generate adapt` run (no {ADAPT_RESULT}); rerun it with the same "
            "settings to finish it"
        )
    _check_base(folder, result.get("base", {}), base_configs(model.path), model.model)
    per_class = bool(settings.get("one_per_class"))
    if per_class:
        trained = result.get("classes", {})
        missing = [c for c in class_ids if c not in trained]
        if missing:
            raise SynthgapError(f"{folder} has one LoRA per class but none for: {', '.join(missing[:8])}")
        weights = {c: _weights_file(folder / trained[c]["folder"]) for c in class_ids}
    else:
        weights = {None: _weights_file(folder)}
    for path in weights.values():
        _check_rank(path, int(settings.get("rank", 0)))
    digests = {str(c): file_digest(p) for c, p in weights.items()}
    recorded = result.get("sha256", {})
    changed = [c for c, d in digests.items() if recorded.get(c) not in (None, d)]
    if changed:
        raise SynthgapError(
            f"{folder}: the weights of {', '.join(changed[:4])} changed since training ({ADAPT_RESULT})"
        )
    sha = digests["None"] if not per_class else hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    return LoraFolder(folder, weights, sha, per_class)


def apply_lora(pipe: Any, lora: LoraFolder) -> None:
    """Load every LoRA of the folder into `pipe` as an adapter, after checking its modules and shapes fit."""
    with library_bars_off("diffusers", "transformers"):  # a "Loading weights" bar per text-encoder LoRA is noise
        for class_id, path in lora.weights.items():
            check_fits(pipe, path)
            try:
                with warnings.catch_warnings():  # peft warns on every adapter after the first: here that is the plan
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=lora.adapter(class_id))
            except (ValueError, RuntimeError, KeyError) as exc:
                reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                raise SynthgapError(f"the LoRA {path} does not fit this model: {reason}") from None
            lora.loaded.add(lora.adapter(class_id))


def check_fits(pipe: Any, path: Path) -> None:
    """Every LoRA pair of the file must name a module of the pipeline with matching in/out features."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    for key, shape in sorted(shapes.items()):
        component, _, rest = key.partition(".")
        suffix = next((s for s in LORA_SUFFIXES if rest.endswith(s)), None)
        model = getattr(pipe, component, None) if component in BASE_COMPONENTS else None
        if model is None or suffix is None or not suffix.endswith(".weight") or len(shape) != 2:
            continue  # another layout (diffusers converts it on load) or a conv LoRA: left to the loader
        name = rest[: -len(suffix)]
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise SynthgapError(
                f"the LoRA {path} targets {component}.{name}, which this model does not have (other target modules "
                "or another base model)"
            ) from None
        expected = getattr(module, "in_features", None) if "lora_A" in suffix else getattr(module, "out_features", None)
        actual = shape[1] if "lora_A" in suffix else shape[0]
        if expected is not None and expected != actual:
            raise SynthgapError(
                f"the LoRA {path} does not fit this model: {component}.{name} has {expected} features, the LoRA "
                f"{actual} (trained on another base model)"
            )


def make_with_lora(
    lora: LoraFolder | None,
    pipe: Any,
    scale: float,
    batch: list[Item],
    generators: list[torch.Generator],
    call: Callable[[list[Item], list[torch.Generator]], list],
) -> list:
    """`call(items, generators)` for a batch, with the LoRA active: one call for the batch, or with one LoRA per class
    one call per class of the batch (in batch order, each image keeping its own generator)."""
    if lora is None:
        return call(batch, generators)
    if not lora.per_class:
        lora.use(pipe, None, scale)
        return call(batch, generators)
    images = []
    for class_id, group in runs_by_class(batch):
        lora.use(pipe, class_id, scale)
        images.extend(call([item for _, item in group], [generators[i] for i, _ in group]))
    return images


def lora_description(lora: LoraFolder | None, scale: float) -> dict[str, Any]:
    """The manifest fields of an image made with a LoRA (none without one)."""
    return {} if lora is None else {"lora": lora.sha256, "lora_scale": scale}


def lora_settings(lora: LoraFolder | None, scale: float) -> dict[str, Any]:
    """What generate.json records of the LoRA: its checksum (a changed LoRA is other settings) and scale; nothing
    without one, so runs without a LoRA keep the settings they always had."""
    return {} if lora is None else {"lora_sha256": lora.sha256, "lora_scale": scale}


def _weights_file(folder: Path) -> Path:
    path = folder / LORA_WEIGHTS
    if path.is_file():
        return path
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    pickled = [p for p in files if p.suffix in PICKLE_SUFFIXES]
    if pickled:
        raise SynthgapError(
            f"refusing {pickled[0]}: the LoRA is stored only as a pickle file, and loading it would unpickle "
            f"untrusted code; convert it to safetensors ({LORA_WEIGHTS})"
        )
    others = [p for p in files if p.suffix == ".safetensors"]
    if len(others) == 1:
        return others[0]
    raise SynthgapError(f"no LoRA weights in {folder} (expected {LORA_WEIGHTS})")


def _check_base(folder: Path, trained: dict[str, Any], model: dict[str, Any], name: str) -> None:
    for component in sorted(trained.keys() & model.keys()):
        old, new = trained[component], model[component]
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if changed:
            shown = "; ".join(f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in changed[:3])
            raise SynthgapError(
                f"the LoRA {folder} was trained on another base model than {name}: its {component} config differs "
                f"({shown})"
            )


def _check_rank(path: Path, rank: int) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        ranks = {handle.get_slice(k).get_shape()[0] for k in handle.keys() if k.endswith(".lora_A.weight")}  # noqa: SIM118
    if rank and ranks and ranks != {rank}:
        raise SynthgapError(f"the LoRA {path} has rank {sorted(ranks)}, but its {ADAPT_SETTINGS} says {rank}")


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SynthgapError(f"corrupt {path}: not a JSON file") from None
    if not isinstance(value, dict):
        raise SynthgapError(f"corrupt {path}: expected a JSON object")
    return value
