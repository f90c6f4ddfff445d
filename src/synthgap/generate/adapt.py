"""LoRA adaptation of a text-to-image model to the user's real images (DataDream, Real-Fake), resumable.

    synthgap generate adapt --model CompVis/stable-diffusion-v1-4 --source imagenet100:/data/imagenet \\
        --per-class 16 --rank 16 --lr 1e-4 --epochs 200 --text-encoder --out loras/in100-r16
    synthgap generate text2img --lora loras/in100-r16 --lora-scale 0.5 ... --out gen/lora-in100

peft LoRA layers (`LoraConfig`) on the UNet's attention projections (to_q, to_k, to_v, to_out.0) and, with
`--text-encoder`, on the text encoder's (q_proj, k_proj, v_proj, out_proj), trained with the usual denoising loss:
each real image's VAE latent, noised at a random timestep of the model's own noise schedule, under its class prompt.
`--one-per-class` trains one LoRA per class (DataDream's per-class variant) in a sub-folder each.

Every random draw (LoRA init, epoch order, latent sample, noise, timesteps) comes from a generator seeded by
(seed, LoRA, epoch or step), and the LoRA and optimizer state are saved after every epoch: a killed run resumes from
its last finished epoch and, on the CPU, ends with bit-identical weights. Output: ``pytorch_lora_weights.safetensors``
(diffusers' layout, loadable with `load_lora_weights`), ``adapt.json`` (the settings: a rerun with others is refused)
and, written last, ``training.json`` (base model configs, loss per epoch, real images used, weights' sha256).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from synthgap.data.items import ImageItems
from synthgap.errors import SynthgapError, warn
from synthgap.generate.classes import ClassInfo
from synthgap.generate.lora import ADAPT_RESULT, ADAPT_SETTINGS, LORA_WEIGHTS, base_configs
from synthgap.generate.models import (
    DEFAULT_TEXT2IMG_MODEL,
    ResolvedModel,
    choose_device_dtype,
    load_pipeline,
    native_size,
    resolve_model,
)
from synthgap.generate.output import check_run_settings
from synthgap.generate.plan import image_seed
from synthgap.generate.prompts import PromptMaker, check_templates
from synthgap.generate.real import load_rgb, real_images, source_classes, square
from synthgap.generate.text2img import PIPELINE as TEXT2IMG
from synthgap.io import atomic_path, atomic_write_json, file_digest, save_safetensors
from synthgap.progress import progress_bar

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
STATE = "state"  # per LoRA: adapter.safetensors, optimizer.pt, state.json (written last, holding both digests)
NEXT = ".next"  # a state file being saved, moved in once state.json holds its digest
ALL = "all"  # the key of the one LoRA of a data-set run
FAR_OFF = 2.0  # a --size more than this factor from the model's own size is warned about


@dataclass
class AdaptConfig:
    """Settings of a LoRA adaptation run; all but `out` and `data_root` fix the weights."""

    out: Path
    source: str  # real images (train split): cifake:real, folder:DIR, imagenet100:DIR, ...
    model: str = DEFAULT_TEXT2IMG_MODEL
    revision: str | None = None
    data_root: Path | None = None
    classes: str | None = None  # a class list for prompt names; its classes must be the source's
    templates: tuple[str, ...] = ("a photo of a {name}",)
    per_class: int | None = None  # real images per class (the first in the source's order); None: all
    rank: int = 8
    lr: float = 1e-4
    epochs: int = 10
    steps: int | None = None  # optimizer steps per LoRA instead of whole epochs
    batch_size: int = 4
    size: int | None = None  # training resolution; None: the model's own (`native_size`)
    text_encoder: bool = False
    one_per_class: bool = False
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    seed: int = 0
    precision: str = "auto"


@dataclass(frozen=True)
class Example:
    """One real training image (an item of one image: a file, a dataset row), its class and position in the class."""

    image: ImageItems
    cls: ClassInfo
    index: int


@dataclass(frozen=True)
class AdaptResult:
    out: Path
    loras: int
    steps_run: int  # optimizer steps this call ran (0: all done before)
    losses: dict[str, list[float]]  # mean loss per epoch, per LoRA
    seconds: float

    def summary(self) -> str:
        last = {key: values[-1] for key, values in self.losses.items() if values}
        shown = ", ".join(f"{key} {value:.4f}" for key, value in list(last.items())[:4])
        return (
            f"{self.loras} LoRA(s) in {self.out}: {self.steps_run} steps this run ({self.seconds:.0f} s); "
            f"last-epoch loss {shown}{' …' if len(last) > 4 else ''}"
        )


def check_config(c: AdaptConfig) -> None:
    for name in ("rank", "epochs", "batch_size", "size"):
        if getattr(c, name) is not None and getattr(c, name) < 1:
            raise SynthgapError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(c, name)}")
    if c.steps is not None and c.steps < 1:
        raise SynthgapError(f"--steps must be at least 1, got {c.steps}")
    if c.per_class is not None and c.per_class < 1:
        raise SynthgapError(f"--per-class must be at least 1, got {c.per_class}")
    if not c.lr > 0 or not math.isfinite(c.lr):
        raise SynthgapError(f"--lr must be a positive number, got {c.lr}")
    if c.size is not None and c.size % 8:
        raise SynthgapError(f"--size must be a multiple of 8 (the VAE downsamples by 8), got {c.size}")
    choose_device_dtype(c.precision)


def settle_size(c: AdaptConfig, model: ResolvedModel) -> AdaptConfig:
    """`c` with its training size settled: None is the model's own size; a size more than FAR_OFF times off it is
    kept, with one warning (a 512 px run of a 32 px model costs ~250 times the compute of its own size, and a run far
    below a model's size teaches the LoRA images the model does not make)."""
    native = native_size(model.path)
    if c.size is None:
        if native is None:
            raise SynthgapError(
                f"cannot tell the image size {c.model} was trained at from its unet and vae configs; give --size"
            )
        c = replace(c, size=native)
        check_config(c)
    elif native is not None and max(c.size / native, native / c.size) > FAR_OFF:
        warn(
            f"--size {c.size} is far from {c.model}'s own image size ({native} px): training costs and results "
            f"differ from the model's; leave --size out to train at {native} px"
        )
    return c


def training_sets(c: AdaptConfig) -> tuple[list[ClassInfo], dict[str, list[Example]]]:
    """The source's classes and the examples of each LoRA (one set, or one per class)."""
    from synthgap.data.sources import open_source

    index = open_source(c.source, "train", c.data_root)
    classes = source_classes(index, c.classes)
    by_label = real_images(index)
    examples = {
        cls.id: [Example(p, cls, j) for j, p in enumerate(by_label.get(label, [])[: c.per_class])]
        for label, cls in enumerate(classes)
    }
    if c.one_per_class:
        return classes, {cls.folder: examples[cls.id] for cls in classes if examples[cls.id]}
    return classes, {ALL: [e for cls in classes for e in examples[cls.id]]}


class Adapter:
    """Trains the LoRA(s) of one run; `__call__` resumes where a killed run stopped."""

    def __init__(self, config: AdaptConfig) -> None:
        self.config = config
        self.out = Path(config.out)

    def __call__(self, progress: bool = True) -> AdaptResult:
        start = time.perf_counter()
        c = self.config
        check_config(c)
        classes, sets = training_sets(c)
        self.prompts = PromptMaker(tuple(c.templates))
        check_templates(self.prompts, classes)
        self.model = resolve_model(c.model, c.revision)
        self.config = c = settle_size(c, self.model)  # settings record the size trained at, given or not
        check_run_settings(self.out, ADAPT_SETTINGS, "adapt", self.settings(classes))
        losses, steps_run = {}, 0
        for key, examples in sets.items():
            folder = self.out if key == ALL else self.out / key
            losses[key], ran = self.train_one(key, folder, examples, progress)
            steps_run += ran
        self.finish(classes, sets, losses)
        return AdaptResult(self.out, len(sets), steps_run, losses, time.perf_counter() - start)

    def settings(self, classes: list[ClassInfo]) -> dict[str, Any]:
        fixed = {k: v for k, v in asdict(self.config).items() if k not in ("out", "data_root", "classes")}
        return {
            **fixed,
            "resolved_revision": self.model.revision,
            "classes": [[c.id, c.name] for c in classes],
            "unet_targets": list(UNET_TARGETS),
            "text_encoder_targets": list(TEXT_TARGETS) if self.config.text_encoder else [],
        }

    # -- one LoRA -------------------------------------------------------------------------------------------------

    def train_one(self, key: str, folder: Path, examples: list[Example], progress: bool) -> tuple[list[float], int]:
        c = self.config
        per_epoch = math.ceil(len(examples) / c.batch_size)
        total = c.steps if c.steps is not None else c.epochs * per_epoch
        epochs = math.ceil(total / per_epoch)
        state = read_state(folder / STATE)
        if (folder / LORA_WEIGHTS).is_file() and state is not None and state["step"] >= total:
            return state["losses"], 0  # this LoRA was finished before
        parts = self.load_parts(key)
        if state is not None:
            parts.restore(folder / STATE)
        losses = [] if state is None else list(state["losses"])
        step, ran = (0, 0) if state is None else (state["step"], 0)
        desc = f"adapt {key}" if c.one_per_class else "adapt"
        with progress_bar(total, desc=desc, unit="step", initial=step, epochs=epochs, enabled=progress) as bar:
            for epoch in range(len(losses), epochs):
                started, epoch_losses = time.perf_counter(), []
                order = torch.randperm(len(examples), generator=_generator(c.seed, f"{key}/order", epoch)).tolist()
                for first in range(0, len(examples), c.batch_size):
                    if step >= total:
                        break
                    batch = [examples[i] for i in order[first : first + c.batch_size]]
                    epoch_losses.append(
                        parts.step(
                            batch,
                            [self.prompts(e.cls, _prompt_seed(c, e))[0] for e in batch],
                            _generator(c.seed, f"{key}/step", step),
                        )
                    )
                    step, ran = step + 1, ran + 1
                    bar.update(1)
                losses.append(epoch_loss(epoch_losses, epoch, c.lr))
                parts.save_state(folder / STATE, step, losses)
                bar.epoch_done({"epoch": epoch + 1, "train_loss": losses[-1], "seconds": time.perf_counter() - started})
        parts.save_lora(folder)
        return losses, ran

    def load_parts(self, key: str) -> LoraParts:
        c = self.config
        device, dtype = training_device_dtype(c.precision)
        pipe = load_pipeline(self.model, TEXT2IMG, dtype, safety_checker=False)
        torch.manual_seed(image_seed(c.seed, f"{key}/init", 0))  # peft draws the LoRA's initial A from torch's RNG
        return LoraParts(pipe, c, device, dtype)

    # -- the end -------------------------------------------------------------------------------------------------

    def finish(self, classes: list[ClassInfo], sets: dict[str, list[Example]], losses: dict[str, list[float]]) -> None:
        """training.json, written last: what the LoRA loader checks (base configs, digests) and what it used."""
        c = self.config
        weights = {key: (self.out if key == ALL else self.out / key) / LORA_WEIGHTS for key in sets}
        by_folder = {cls.folder: cls.id for cls in classes}
        record: dict[str, Any] = {
            "base_model": c.model,
            "base": base_configs(self.model.path),
            "rank": c.rank,
            "losses": losses,
            "real_images_used": sum(len(e) for e in sets.values()),
            "real_labels_used": sum(len(e) for e in sets.values()),
        }
        if c.one_per_class:
            record["classes"] = {by_folder[key]: {"folder": key, "images": len(sets[key])} for key in sets}
            record["sha256"] = {by_folder[key]: file_digest(path) for key, path in weights.items()}
        else:
            record["sha256"] = {"None": file_digest(weights[ALL])}
        atomic_write_json(self.out / ADAPT_RESULT, record)


class LoraParts:
    """The model parts of one LoRA's training: frozen VAE, UNet and text encoder with LoRA layers, the optimizer."""

    def __init__(self, pipe: Any, config: AdaptConfig, device: torch.device, dtype: torch.dtype) -> None:
        from diffusers import DDPMScheduler
        from peft import LoraConfig

        assert config.size is not None, "settle_size() first"
        self.config, self.device, self.dtype, self.size = config, device, dtype, config.size
        self.vae, self.unet, self.text_encoder, self.tokenizer = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer
        self.noise = DDPMScheduler.from_config(pipe.scheduler.config)  # the model's own noise schedule
        for module in (self.vae, self.unet, self.text_encoder):
            module.requires_grad_(False)
            module.to(device)

        def lora(targets: tuple[str, ...]) -> LoraConfig:  # alpha = rank: scale 1, what loaders assume
            return LoraConfig(
                r=config.rank, lora_alpha=config.rank, init_lora_weights="gaussian", target_modules=list(targets)
            )

        self.unet.add_adapter(lora(UNET_TARGETS))
        self.trained = {"unet": self.unet}
        if config.text_encoder:  # peft directly: transformers' own add_adapter asks for a newer peft than diffusers
            from peft import inject_adapter_in_model

            config_text = lora(TEXT_TARGETS)
            inject_adapter_in_model(config_text, self.text_encoder)
            self.text_encoder.peft_config = {"default": config_text}  # what get_peft_model_state_dict reads
            self.trained["text_encoder"] = self.text_encoder
        self.params = [p for m in self.trained.values() for p in m.parameters() if p.requires_grad]
        for p in self.params:
            p.data = p.data.float()  # LoRA weights train in fp32 even when the base runs in half precision
        # fused on a GPU (one kernel, and the scaler's skip decided there); the CPU keeps the loop it always ran
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, weight_decay=config.weight_decay, fused=device.type == "cuda"
        )
        # fp16 needs loss scaling for its small gradients; bf16 (what `auto` picks on GPUs that have it) and fp32 not
        self.scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None

    def step(self, batch: list[Example], prompts: list[str], generator: torch.Generator) -> float:
        """One optimizer step on a batch: the denoising loss of each image's noised latent under its prompt."""
        c = self.config
        images = [_to_tensor(square(load_rgb(e.image), self.size)) for e in batch]
        pixels = torch.stack(images).to(self.device, self.dtype)
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            with torch.no_grad():
                latents = self.vae.encode(pixels).latent_dist.sample(generator=generator)
                latents = latents * self.vae.config.scaling_factor
            noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(self.device)
            steps = torch.randint(0, self.noise.config.num_train_timesteps, (len(batch),), generator=generator)
            steps = steps.to(self.device)
            noisy = self.noise.add_noise(latents, noise, steps)
            states = self.text_encoder(ids)[0]
            target = (
                noise
                if self.noise.config.prediction_type == "epsilon"
                else self.noise.get_velocity(latents, noise, steps)
            )
            prediction = self.unet(noisy, steps, states).sample
        loss = torch.nn.functional.mse_loss(prediction.float(), target.float())
        # nothing here reads a value back to the host: the losses are read once per epoch (`epoch_loss`), and the
        # fused optimizer takes the scaler's inf check on the device
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        torch.nn.utils.clip_grad_norm_(self.params, c.max_grad_norm)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def lora_state(self) -> dict[str, torch.Tensor]:
        from peft.utils import get_peft_model_state_dict

        return {
            f"{name}.{k}": v.detach().cpu().contiguous()
            for name, module in self.trained.items()
            for k, v in get_peft_model_state_dict(module).items()
        }

    def save_state(self, folder: Path, step: int, losses: list[float]) -> None:
        """The LoRA and optimizer after an epoch; state.json (last) holds both files' digests.

        Both files are written beside their places (NEXT) and moved in once state.json names them, so a kill
        anywhere leaves the last state whole, or the new one complete for `read_state` to move in."""
        folder.mkdir(parents=True, exist_ok=True)
        save_safetensors(self.lora_state(), folder / f"adapter.safetensors{NEXT}")
        with atomic_path(folder / f"optimizer.pt{NEXT}") as tmp:
            scaler = {} if self.scaler is None else {"grad_scaler": self.scaler.state_dict()}
            torch.save({"optimizer": self.optimizer.state_dict(), **scaler}, tmp)
        atomic_write_json(
            folder / "state.json",
            {
                "step": step,
                "losses": losses,
                "sha256": {
                    name: file_digest(folder / f"{name}{NEXT}") for name in ("adapter.safetensors", "optimizer.pt")
                },
            },
        )
        for name in ("adapter.safetensors", "optimizer.pt"):
            os.replace(folder / f"{name}{NEXT}", folder / name)

    def restore(self, folder: Path) -> None:
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        tensors = load_file(folder / "adapter.safetensors")
        for name, module in self.trained.items():
            prefix = f"{name}."
            set_peft_model_state_dict(module, {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        saved = torch.load(folder / "optimizer.pt", weights_only=True)
        if "optimizer" not in saved:  # written before the scaler's state was kept beside it: the optimizer's alone
            saved = {"optimizer": saved}
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scaler is not None and "grad_scaler" in saved:
            self.scaler.load_state_dict(saved["grad_scaler"])

    def save_lora(self, folder: Path) -> None:
        """pytorch_lora_weights.safetensors in diffusers' layout (moved into place whole)."""
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        layers = {
            f"{name}_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(module))
            for name, module in self.trained.items()
        }
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".lora-") as tmp:
            StableDiffusionPipeline.save_lora_weights(tmp, safe_serialization=True, **layers)
            shutil.move(str(Path(tmp) / LORA_WEIGHTS), folder / LORA_WEIGHTS)


def training_device_dtype(precision: str) -> tuple[torch.device, torch.dtype]:
    """Where and in what precision a LoRA trains: as `choose_device_dtype`, except that `auto` on a CUDA GPU with
    bf16 (Ampere and later) trains in bf16, which needs no loss scaling; older GPUs train in fp16 with a scaler."""
    device, dtype = choose_device_dtype(precision)
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return device, torch.bfloat16
    return device, dtype


def epoch_loss(step_losses: list[torch.Tensor], epoch: int, lr: float) -> float:
    """The mean loss of an epoch's steps, read back once; a non-finite step loss is a divergence (stopped here,
    before the epoch's state is saved, so the last saved state is the last good one)."""
    losses = torch.stack(step_losses).double().cpu()
    if not bool(torch.isfinite(losses).all()):
        bad = next(float(v) for v in losses if not math.isfinite(float(v)))
        raise SynthgapError(f"the LoRA loss diverged ({bad} in epoch {epoch + 1}); lower --lr (now {lr})")
    return float(losses.mean())


def read_state(folder: Path) -> dict[str, Any] | None:
    """The last saved epoch's state, or None; files whose digests differ from state.json's are not trusted."""
    path = folder / "state.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        digests = state["sha256"]
        ok = all(_holds(folder, name, d) for name, d in digests.items())
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise SynthgapError(f"the saved state in {folder} does not match its state.json; remove {folder} to restart")
    return state


def _holds(folder: Path, name: str, digest: str) -> bool:
    """Whether `folder/name` has this digest; a save killed after its state.json is finished here (NEXT moved in)."""
    path, written = folder / name, folder / f"{name}{NEXT}"
    if path.is_file() and file_digest(path) == digest:
        return True
    if written.is_file() and file_digest(written) == digest:
        os.replace(written, path)
        return True
    return False


def _generator(seed: int, what: str, n: int) -> torch.Generator:
    return torch.Generator().manual_seed(image_seed(seed, what, n))


def _prompt_seed(c: AdaptConfig, example: Example) -> int:
    return image_seed(c.seed, example.cls.id, example.index)


def _to_tensor(image) -> torch.Tensor:
    """RGB PIL image → CHW float in [-1, 1] (the VAE's input range)."""
    import numpy as np

    array = torch.from_numpy(np.asarray(image, dtype=np.float32).copy())
    return array.permute(2, 0, 1) / 127.5 - 1.0


def adapt(config: AdaptConfig, progress: bool = True) -> AdaptResult:
    """Train (or resume) the LoRA(s) of a run; see `Adapter`."""
    return Adapter(config)(progress)
