"""Image-to-image from real images (Real-Fake, DISEF): each real image of a source, noised to `strength` and denoised
again under its class prompt, k times.

    synthgap generate img2img --model CompVis/stable-diffusion-v1-4 --source imagenet100:/data/imagenet \\
        --per-class 1300 --strength 0.75 --guidance 2 --out gen/img2img-in100 --shard 0/8

Any Stable Diffusion family model works (AutoPipelineForImage2Image picks the pipeline from the model's own
text-to-image class). Strength 1 starts from pure noise (text2img with the real image's size); lower keeps more of
the real image. Classes and their order are the source's; `--classes` may give a class list for prompt names and
fields. Each source image is centre-cropped to a square and resized to `--size` before encoding. Seeds, shards,
resume and byte-identical reruns are those of text2img (plan.py, output.py); manifest lines carry the real `source`,
the `strength` and the `variation`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from synthgap.commands.options import DataRoot
from synthgap.errors import SynthgapError
from synthgap.generate.classes import ClassInfo
from synthgap.generate.command import (
    Backgrounds,
    Lora,
    LoraScale,
    RealPerClass,
    RealSource,
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
from synthgap.generate.plan import Item, Shard
from synthgap.generate.prompts import PromptMaker, check_templates, load_backgrounds
from synthgap.generate.real import describe_source, load_rgb, source_classes, square, variation_items

if TYPE_CHECKING:
    import torch

    from synthgap.data.index import LabelledIndex

DEFAULT_IMG2IMG_TEMPLATES = ("a photo of a {name}",)


PIPELINE = PipelineKind("img2img", "AutoPipelineForImage2Image")  # any text-to-image family


@dataclass
class Img2ImgConfig:
    """Settings of an img2img run. Everything but `shard`, `progress`, `previews` and `data_root` fixes the images."""

    out: Path
    source: str  # a data reference (its train split): cifake:real, folder:DIR, imagenet100:DIR, ...
    model: str = DEFAULT_TEXT2IMG_MODEL
    revision: str | None = None
    data_root: Path | None = None
    classes: str | None = None  # a class list for prompt names and fields; its classes must be the source's
    per_class: int | None = None  # real images per class (the first in the source's order); None: all
    variations: int = 1
    strength: float = 0.75  # Real-Fake and DISEF
    seed: int = 0
    steps: int = 30
    size: int = 512
    batch_size: int = 8
    guidance: float = 2.0  # Real-Fake
    scheduler: str = "ddim"
    templates: tuple[str, ...] = DEFAULT_IMG2IMG_TEMPLATES
    negative_prompt: str = ""
    text: str = ""
    backgrounds: Path | None = None
    precision: str = "auto"
    lora: Path | None = None  # a LoRA folder (synthgap generate adapt, or any diffusers LoRA)
    lora_scale: float = 1.0
    shard: str = "0/1"
    previews: bool = True


class Img2ImgGenerator:
    """Runs one shard of an img2img run."""

    def __init__(self, config: Img2ImgConfig) -> None:
        self.config = config
        self.out = Path(config.out)
        self.lora: LoraFolder | None = None

    def check_inputs(self) -> tuple[LabelledIndex, list[ClassInfo], Shard, PromptMaker]:
        c = self.config
        for name in ("variations", "steps", "size", "batch_size"):
            if getattr(c, name) < 1:
                raise SynthgapError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(c, name)}")
        if c.per_class is not None and c.per_class < 1:
            raise SynthgapError(f"--per-class must be at least 1, got {c.per_class}")
        if not 0 < c.strength <= 1:
            raise SynthgapError(f"--strength must be in (0, 1] (1: start from pure noise), got {c.strength}")
        if round(c.steps * c.strength) < 1:
            raise SynthgapError(f"--strength {c.strength} with --steps {c.steps} leaves no denoising step")
        if c.size % 8:
            raise SynthgapError(f"--size must be a multiple of 8 (the VAE downsamples by 8), got {c.size}")
        if c.guidance < 0:
            raise SynthgapError(f"--guidance must be >= 0, got {c.guidance}")
        SCHEDULERS.get(c.scheduler)
        choose_device_dtype(c.precision)
        shard = Shard.parse(c.shard)
        from synthgap.data.sources import open_source

        index = open_source(c.source, "train", c.data_root)
        classes = source_classes(index, c.classes)
        maker = PromptMaker(tuple(c.templates), load_backgrounds(c.backgrounds), c.text)
        check_templates(maker, classes)
        return index, classes, shard, maker

    def __call__(self, progress: bool = True) -> GenerationResult:
        start = time.perf_counter()
        # 1. check inputs (and index the real images)
        index, classes, shard, self.prompts = self.check_inputs()

        # 2. resolve the model and the LoRA without loading either
        self.model = resolve_model(self.config.model, self.config.revision)
        if self.config.lora is not None:
            self.lora = open_lora(self.config.lora, self.model, [cls.id for cls in classes])

        # 3. plan: k items per selected real image
        items = variation_items(index, classes, self.config.per_class, self.config.variations, self.config.seed)

        # 4-6. this shard's batches, the work left, generation (loading the pipeline only if needed), the merge
        return generator_shard(self, shard, classes, items, progress=progress, start=start)

    def load(self) -> None:
        device, dtype = choose_device_dtype(self.config.precision)
        pipe = load_pipeline(self.model, PIPELINE, dtype, safety_checker=False)
        if self.lora is not None:
            apply_lora(pipe, self.lora)
        self.pipe = prepare_pipeline(pipe, self.config.scheduler, device)

    def make_images(self, batch: list[Item], generators: list[torch.Generator]) -> list:
        return make_with_lora(self.lora, self.pipe, self.config.lora_scale, batch, generators, self.call_pipe)

    def call_pipe(self, items: list[Item], generators: list[torch.Generator]) -> list:
        c = self.config
        return self.pipe(
            prompt=[self.prompts(item.cls, item.seed)[0] for item in items],
            image=[square(load_rgb(item.source), c.size) for item in items],
            strength=c.strength,
            negative_prompt=[c.negative_prompt] * len(items) if c.negative_prompt else None,
            num_inference_steps=c.steps,
            guidance_scale=c.guidance,
            generator=generators,
        ).images

    def describe(self, item: Item) -> dict[str, Any]:
        c = self.config
        prompt, template = self.prompts(item.cls, item.seed)
        return {
            **describe_common(item),
            "prompt": prompt,
            "template": template,
            **describe_sampling(c, self.model),
            "strength": c.strength,
            **describe_source(item, c.variations),
            **lora_description(self.lora, c.lora_scale),
        }

    def settings(self, classes: list[ClassInfo]) -> dict[str, Any]:
        skip = ("out", "shard", "previews", "data_root", "classes", "lora", "lora_scale", "backgrounds")
        fixed = {k: v for k, v in asdict(self.config).items() if k not in skip}
        return {
            "kind": "img2img",
            **fixed,
            "backgrounds": list(self.prompts.backgrounds),
            "resolved_revision": self.model.revision,
            "dtype": str(choose_device_dtype(self.config.precision)[1]),
            "classes": [[cls.id, cls.name] for cls in classes],
            **lora_settings(self.lora, self.config.lora_scale),
        }


def generate_img2img(config: Img2ImgConfig, progress: bool = True) -> GenerationResult:
    """Generate (or resume) one shard of an img2img run; see `Img2ImgGenerator`."""
    return Img2ImgGenerator(config)(progress)


ScheduleSteps = Annotated[int, typer.Option(help="Denoising steps of the full schedule (strength × steps are run).")]


@sampling_command(
    "img2img",
    short_help="Image-to-image from each real image under its class prompt.",
    declare={"steps": ScheduleSteps},
    steps=30,
    guidance=2.0,
)
def command(
    options: SamplingOptions,
    *,
    source: RealSource,
    data_root: DataRoot = None,
    classes: Annotated[
        str | None,
        typer.Option(
            help="Class list for prompt names and fields (its classes must be the source's; default: the "
            "source's class names).",
            show_default=False,
        ),
    ] = None,
    per_class: RealPerClass = None,
    variations: Annotated[int, typer.Option(help="Images made from each real image.")] = 1,
    strength: Annotated[
        float, typer.Option(help="How far each real image is noised, in (0, 1]: 1 is pure noise.")
    ] = 0.75,
    template: Annotated[
        list[str] | None,
        typer.Option(metavar="TEMPLATE", help="Prompt template (repeatable; default 'a photo of a {name}')."),
    ] = None,
    text: TemplateText = "",
    backgrounds: Backgrounds = None,
    lora: Lora = None,
    lora_scale: LoraScale = 1.0,
) -> None:
    """Image-to-image from each real image of a source under its class prompt (Real-Fake, DISEF). Rerun to resume."""
    config = Img2ImgConfig(
        **options.config_fields(),
        source=source,
        data_root=data_root,
        classes=classes,
        per_class=per_class,
        variations=variations,
        strength=strength,
        templates=tuple(template or DEFAULT_IMG2IMG_TEMPLATES),
        text=text,
        backgrounds=backgrounds,
        lora=lora,
        lora_scale=lora_scale,
    )
    run_sampling(generate_img2img, config, options)
