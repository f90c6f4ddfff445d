"""Finding and loading diffusers pipelines: a Hugging Face model id or a local folder, one code path for both.

A model id is first resolved to a local snapshot folder (the Hugging Face cache, downloading only if allowed), and
the pipeline is then always loaded with ``from_pretrained(local_folder)`` — the path the tests' tiny pipelines take.
The snapshot folder name gives the commit hash recorded in the manifest.

Only safetensors weights are loaded. A component stored only as pickle files (`pytorch_model.bin`, `.pt`, `.ckpt`)
is refused before anything is read: unpickling a file from the hub can run arbitrary code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthgap.errors import SynthgapError
from synthgap.generate.quiet import library_bars_off
from synthgap.hub import hub_unavailable_message
from synthgap.registry import Registry

if TYPE_CHECKING:
    import torch

DEFAULT_TEXT2IMG_MODEL = "CompVis/stable-diffusion-v1-4"  # the paper's generator
OTHER_TEXT2IMG_MODELS = ("stable-diffusion-v1-5/stable-diffusion-v1-5", "stabilityai/stable-diffusion-2-1-base")
DEFAULT_UNCLIP_MODEL = "stabilityai/stable-diffusion-2-1-unclip"
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # torch dtypes by name: torch loads late
SNAPSHOT = re.compile(r"snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")  # weight files torch.load would unpickle

SchedulerFactory = Callable[[Any], Any]
SCHEDULERS: Registry[SchedulerFactory] = Registry("scheduler")


@SCHEDULERS.register("default")
def _keep(scheduler: Any) -> Any:
    return scheduler


@SCHEDULERS.register("ddim")
def _ddim(scheduler: Any) -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(scheduler.config)


@SCHEDULERS.register("dpm++")
def _dpm_solver_pp(scheduler: Any) -> Any:
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler.from_config(scheduler.config, algorithm_type="dpmsolver++")


@SCHEDULERS.register("unipc")
def _unipc(scheduler: Any) -> Any:
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler.from_config(scheduler.config)


@SCHEDULERS.register("euler_a")
def _euler_ancestral(scheduler: Any) -> Any:
    from diffusers import EulerAncestralDiscreteScheduler

    return EulerAncestralDiscreteScheduler.from_config(scheduler.config)


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are, what the user called it, and the commit hash when known."""

    model: str
    path: Path
    revision: str | None


def resolve_model(model: str, revision: str | None = None) -> ResolvedModel:
    """A local folder as is; a model id via the Hugging Face cache (downloads only when the hub is reachable)."""
    local = Path(model).expanduser()
    if local.is_dir():
        _require_model_index(local, model)
        return ResolvedModel(model, local, _snapshot_hash(local.resolve()))
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise SynthgapError(f"model folder not found: {model} (expected a diffusers folder holding model_index.json)")
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "couldn't connect" warnings would precede our one error line
    try:
        folder = Path(DiffusionPipeline.download(model, revision=revision))
    except Exception as exc:  # the hub client raises several types (OSError, HTTP, offline, gated repo)
        raise SynthgapError(_unavailable_message(model, exc)) from None
    finally:
        diffusers_logging.set_verbosity(verbosity)
    return ResolvedModel(model, folder, _snapshot_hash(folder) or revision)


def _unavailable_message(model: str, exc: Exception) -> str:
    return hub_unavailable_message(model, exc)


def _require_model_index(folder: Path, model: str) -> None:
    if not (folder / "model_index.json").is_file():
        raise SynthgapError(f"{model} is not a diffusers pipeline folder (no model_index.json in {folder})")


def _snapshot_hash(folder: Path) -> str | None:
    match = SNAPSHOT.search(str(folder))
    return match.group(1) if match else None


def native_size(folder: Path) -> int | None:
    """The image side a diffusers model folder was trained at, as its pipelines default to it: the UNet's sample size
    (in latents) times the VAE's scale factor, 2 ** (number of VAE blocks - 1); None when the configs do not say."""
    configs = {}
    for component in ("unet", "vae"):
        try:
            configs[component] = json.loads((folder / component / "config.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
    sample, blocks = configs["unet"].get("sample_size"), configs["vae"].get("block_out_channels")
    if isinstance(sample, list) and sample and all(isinstance(side, int) for side in sample):
        sample = max(sample)  # a non-square model: (height, width)
    if not isinstance(sample, int) or not isinstance(blocks, list) or not blocks:
        return None
    return sample * 2 ** (len(blocks) - 1)


def pipeline_class_name(folder: Path) -> str:
    return json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name", "?")


def choose_device_dtype(precision: str) -> tuple[torch.device, torch.dtype]:
    """CUDA when present; ``auto`` is fp16 on CUDA and fp32 on the CPU (CPU half precision is slow or unsupported)."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision == "auto":
        return device, torch.float16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise SynthgapError(f"unknown precision {precision!r}; choose from: auto, {', '.join(PRECISIONS)}")
    return device, getattr(torch, PRECISIONS[precision])


@dataclass(frozen=True)
class PipelineKind:
    """How a generator loads its diffusers pipeline: each generator module declares its own (`text2img.PIPELINE`),
    so a new generator adds none of this module's code."""

    name: str  # "text2img", in messages
    loader: str  # the diffusers class whose from_pretrained loads it, e.g. AutoPipelineForImage2Image
    # the model_index class names it takes (empty: whatever the loader takes), and how a refusal describes them
    accepts: tuple[str, ...] = ()
    described: str = ""
    example: str = ""  # a model id that fits, named in a refusal


def load_pipeline(resolved: ResolvedModel, kind: PipelineKind, dtype: torch.dtype, safety_checker: bool) -> Any:
    """Load the pipeline of a generator's `kind` (text-to-image, image-to-image from any text-to-image family
    through AutoPipelineForImage2Image, unCLIP image variation, ...) from its folder."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True}
    class_name = pipeline_class_name(resolved.path)
    model_index = json.loads((resolved.path / "model_index.json").read_text(encoding="utf-8"))
    if not safety_checker and "safety_checker" in model_index:
        kwargs.update(safety_checker=None, requires_safety_checker=False)  # skip loading ~1 GB of weights
    refuse_pickled_weights(resolved, model_index, skip={k for k, v in kwargs.items() if v is None})
    # loading progress bars and "weights not used" notices are noise in a command's output
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    if kind.accepts and class_name not in kind.accepts:
        raise SynthgapError(
            f"{resolved.model} is a {class_name}, not {kind.described} ({', '.join(kind.accepts)}, e.g. {kind.example})"
        )
    try:
        with library_bars_off("diffusers", "transformers", "huggingface_hub"):
            import diffusers

            pipe = getattr(diffusers, kind.loader).from_pretrained(resolved.path, **kwargs)
    except (ValueError, OSError) as exc:
        raise SynthgapError(f"cannot load {resolved.model} ({class_name}) as a {kind.name} pipeline: {exc}") from None
    pipe.set_progress_bar_config(disable=True)  # our own bar counts images, not denoising steps
    return pipe


def refuse_pickled_weights(resolved: ResolvedModel, model_index: dict[str, Any], skip: Collection[str] = ()) -> None:
    """Raise a SynthgapError when a component the pipeline will load has pickle weight files and no safetensors.

    Checked on the folder before loading, so the user gets one line naming the file rather than a loader's
    fallback to `torch.load` or a long unpickling traceback.
    """
    for component, spec in sorted(model_index.items()):
        if component.startswith("_") or component in skip or not isinstance(spec, list) or None in spec:
            continue  # "_class_name" etc., components passed as None, components the pipeline leaves out
        folder = resolved.path / component
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file())
        pickled = [p for p in files if p.suffix in PICKLE_SUFFIXES]
        if pickled and not any(p.suffix == ".safetensors" for p in files):
            raise SynthgapError(
                f"refusing {pickled[0]}: {resolved.model} stores its {component} weights only as pickle files, and "
                "loading them would unpickle untrusted code; convert them to safetensors (load the component where "
                "you trust the file and save it with save_pretrained(..., safe_serialization=True)), or use a model "
                "that ships .safetensors weights"
            )


def prepare_pipeline(pipe: Any, scheduler: str, device: torch.device) -> Any:
    """Swap the scheduler, move to the device and use PyTorch SDPA attention on CUDA."""
    pipe.scheduler = SCHEDULERS.get(scheduler)(pipe.scheduler)
    pipe = pipe.to(device)
    if device.type == "cuda" and hasattr(pipe, "unet"):
        from diffusers.models.attention_processor import AttnProcessor2_0

        pipe.unet.set_attn_processor(AttnProcessor2_0())  # fused scaled-dot-product attention (flash / mem-efficient)
    return pipe


def scheduler_name(option: str, folder: Path) -> str:
    """The manifest's scheduler field: the option, or for "default" the class named in the model's scheduler config
    (read from disk, so a resumed run can rebuild manifest lines without loading the pipeline)."""
    if option != "default":
        return option
    config = folder / "scheduler" / "scheduler_config.json"
    return json.loads(config.read_text(encoding="utf-8")).get("_class_name", "?") if config.is_file() else "?"
