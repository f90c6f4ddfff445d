"""Text-to-image generation: a class list → prompts → any diffusers text-to-image pipeline → an ImageFolder + manifest.

    synthgap generate text2img --model CompVis/stable-diffusion-v1-4 --classes imagenet100 --per-class 1300 \\
        --out gen/sd14-in100 --shard 0/8

Every image's seed is a function of (seed, class, index) and batches are fixed for the whole run, so any sharding,
any kill and any resume give the same files (see plan.py and output.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from synthgap.errors import SynthgapError
from synthgap.generate.classes import ClassInfo, load_classes
from synthgap.generate.command import (
    Backgrounds,
    Lora,
    LoraScale,
    SamplingOptions,
    TemplateText,
    run_sampling,
    sampling_command,
)
from synthgap.generate.common import GenerationResult, describe_common, describe_sampling, generator_shard
from synthgap.generate.lora import (
    LoraFolder,
    apply_lora,
    lora_description,
    lora_settings,
    make_with_lora,
    open_lora,
)
from synthgap.generate.models import (
    DEFAULT_TEXT2IMG_MODEL,
    SCHEDULERS,
    PipelineKind,
    choose_device_dtype,
    load_pipeline,
    prepare_pipeline,
    resolve_model,
)
from synthgap.generate.plan import Item, Shard, text2img_items
from synthgap.generate.prompts import DEFAULT_TEMPLATES, PromptMaker, check_templates, load_backgrounds

if TYPE_CHECKING:
    import torch

PIPELINE = PipelineKind("text2img", "AutoPipelineForText2Image")


@dataclass
class Text2ImgConfig:
    """Settings of a text-to-image run. Everything but `shard`, `progress` and `previews` fixes the images."""

    out: Path
    model: str = DEFAULT_TEXT2IMG_MODEL
    revision: str | None = None
    classes: str = "cifar10"  # imagenet100 | cifar10 | a .txt/.csv/.json file
    per_class: int = 1300
    seed: int = 0
    steps: int = 50
    size: int = 512
    batch_size: int = 8
    guidance: float = 7.5
    scheduler: str = "ddim"  # ddim | dpm++ | euler_a | default
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    negative_prompt: str = ""
    text: str = ""  # the {text} field
    backgrounds: Path | None = None  # one background per line (default: a built-in list)
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16
    safety_checker: bool = False
    lora: Path | None = None  # a LoRA folder (synthgap generate adapt, or any diffusers LoRA)
    lora_scale: float = 1.0
    shard: str = "0/1"
    previews: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # passed to the pipeline call as is (e.g. eta)


class Text2ImgGenerator:
    """Runs one shard of a text-to-image generation run (diffusers pipeline used as a part, not subclassed)."""

    def __init__(self, config: Text2ImgConfig) -> None:
        self.config = config
        self.out = Path(config.out)
        self.lora: LoraFolder | None = None

    def check_inputs(self) -> tuple[list[ClassInfo], Shard, PromptMaker]:
        """Validate everything that can be checked before touching a model; raise clear errors."""
        c = self.config
        for name in ("per_class", "steps", "size", "batch_size"):
            if getattr(c, name) < 1:
                raise SynthgapError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(c, name)}")
        if c.size % 8:
            raise SynthgapError(f"--size must be a multiple of 8 (the VAE downsamples by 8), got {c.size}")
        if c.guidance < 0:
            raise SynthgapError(f"--guidance must be >= 0, got {c.guidance}")
        SCHEDULERS.get(c.scheduler)
        choose_device_dtype(c.precision)
        shard = Shard.parse(c.shard)
        classes = load_classes(c.classes)
        maker = PromptMaker(tuple(c.templates), load_backgrounds(c.backgrounds), c.text)
        check_templates(maker, classes)
        return classes, shard, maker

    def __call__(self, progress: bool = True) -> GenerationResult:
        start = time.perf_counter()
        # 1. check inputs
        classes, shard, self.prompts = self.check_inputs()

        # 2. resolve the model (a local folder, or the Hugging Face cache) without loading it
        self.model = resolve_model(self.config.model, self.config.revision)
        if self.config.lora is not None:
            self.lora = open_lora(self.config.lora, self.model, [cls.id for cls in classes])

        # 3. plan: one item per image
        items = text2img_items(classes, self.config.per_class, self.config.seed)

        # 4-6. this shard's batches, the work left, generation (loading the pipeline only if needed), the merge
        return generator_shard(self, shard, classes, items, progress=progress, start=start)

    def load(self) -> None:
        device, dtype = choose_device_dtype(self.config.precision)
        pipe = load_pipeline(self.model, PIPELINE, dtype, self.config.safety_checker)
        if self.lora is not None:
            apply_lora(pipe, self.lora)
        self.pipe = prepare_pipeline(pipe, self.config.scheduler, device)

    def make_images(self, batch: list[Item], generators: list[torch.Generator]) -> list:
        return make_with_lora(self.lora, self.pipe, self.config.lora_scale, batch, generators, self.call_pipe)

    def call_pipe(self, batch: list[Item], generators: list[torch.Generator]) -> list:
        c = self.config
        prompts = [self.prompts(item.cls, item.seed)[0] for item in batch]
        negative = [c.negative_prompt] * len(batch) if c.negative_prompt else None
        return self.pipe(
            prompt=prompts,
            negative_prompt=negative,
            num_inference_steps=c.steps,
            guidance_scale=c.guidance,
            height=c.size,
            width=c.size,
            generator=generators,  # a list: each image gets its own noise, whatever else is in the batch
            **c.extra,
        ).images

    def describe(self, item: Item) -> dict[str, Any]:
        """The manifest line of an image minus file and sha256: a pure function of the item and the settings."""
        c = self.config
        prompt, template = self.prompts(item.cls, item.seed)
        return {
            **describe_common(item),
            "prompt": prompt,
            "template": template,
            **describe_sampling(c, self.model),
            "source": None,
            **lora_description(self.lora, c.lora_scale),
        }

    def settings(self, classes: list[ClassInfo]) -> dict[str, Any]:
        """What generate.json records: every setting that changes pixels or prompts."""
        fixed = {
            k: v
            for k, v in asdict(self.config).items()
            if k not in ("out", "shard", "previews", "classes", "lora", "lora_scale")
        }
        return {
            "kind": "text2img",
            **fixed,
            "backgrounds": list(self.prompts.backgrounds),
            "resolved_revision": self.model.revision,
            "dtype": str(choose_device_dtype(self.config.precision)[1]),
            "classes": [[cls.id, cls.name] for cls in classes],
            **lora_settings(self.lora, self.config.lora_scale),
        }


def generate_text2img(config: Text2ImgConfig, progress: bool = True) -> GenerationResult:
    """Generate (or resume) one shard of a text-to-image run; see `Text2ImgGenerator`."""
    return Text2ImgGenerator(config)(progress)


@sampling_command("text2img", short_help="Text-to-image from the prompts of a class list.")
def command(
    options: SamplingOptions,
    *,
    classes: Annotated[str, typer.Option(help="imagenet100 | cifar10 | a .txt/.csv/.json class list.")] = "cifar10",
    per_class: Annotated[int, typer.Option(help="Images per class.")] = 1300,
    template: Annotated[
        list[str] | None,
        typer.Option(metavar="TEMPLATE", help="Prompt template (repeatable), e.g. 'a photo of a {name}'."),
    ] = None,
    text: TemplateText = "",
    backgrounds: Backgrounds = None,
    safety_checker: Annotated[bool, typer.Option(help="Run the model's safety checker (off: not loaded).")] = False,
    lora: Lora = None,
    lora_scale: LoraScale = 1.0,
) -> None:
    """Text-to-image: prompts from a class list through any diffusers text-to-image model. Rerun to resume."""
    config = Text2ImgConfig(
        **options.config_fields(),
        classes=classes,
        per_class=per_class,
        templates=tuple(template or DEFAULT_TEMPLATES),
        text=text,
        backgrounds=backgrounds,
        safety_checker=safety_checker,
        lora=lora,
        lora_scale=lora_scale,
    )
    run_sampling(generate_text2img, config, options)
