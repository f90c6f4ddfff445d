"""unCLIP image variations ("oracle prompts"): k variations of each real image of a data source.

    synthgap generate unclip --source imagenet100:/data/imagenet --per-class 1300 --variations 1 \\
        --out gen/unclip-in100 --shard 0/8

The real image's CLIP image embedding replaces the text prompt (StableUnCLIPImg2ImgPipeline), so each synthetic
image shows what a real one shows. Classes are the source's own (ids and order), so the generated set lines up with
that source in experiments. The manifest records each image's source file.
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
    RealPerClass,
    RealSource,
    SamplingOptions,
    model_option,
    run_sampling,
    sampling_command,
)
from synthgap.generate.common import GenerationResult, describe_common, describe_sampling, generator_shard
from synthgap.generate.models import (
    DEFAULT_UNCLIP_MODEL,
    SCHEDULERS,
    PipelineKind,
    choose_device_dtype,
    load_pipeline,
    prepare_pipeline,
    resolve_model,
)
from synthgap.generate.plan import Item, Shard
from synthgap.generate.prompts import fill_template
from synthgap.generate.real import describe_source, load_rgb, source_classes, variation_items

if TYPE_CHECKING:
    import torch

    from synthgap.data.index import LabelledIndex

PIPELINE = PipelineKind(
    "unclip",
    "StableUnCLIPImg2ImgPipeline",
    accepts=("StableUnCLIPImg2ImgPipeline",),
    described="an unCLIP image-variation pipeline",
    example=DEFAULT_UNCLIP_MODEL,
)


@dataclass
class UnclipConfig:
    """Settings of an unCLIP variation run. Everything but `shard`, `progress` and `previews` fixes the images."""

    out: Path
    source: str  # a data reference, e.g. cifake:real, folder:/dir, imagenet100:/data/imagenet (its train split)
    model: str = DEFAULT_UNCLIP_MODEL
    revision: str | None = None
    data_root: Path | None = None
    per_class: int | None = None  # real images per class (the first ones in the source's order); None: all
    variations: int = 1  # k variations per real image
    noise_level: int = 0  # noise added to the image embedding (0..999): higher = looser variations
    prompt: str = ""  # optional text beside the image embedding; may use {name}
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 50
    size: int = 768
    batch_size: int = 4
    guidance: float = 10.0  # diffusers' default for this pipeline
    scheduler: str = "default"
    precision: str = "auto"
    shard: str = "0/1"
    previews: bool = True


class UnclipGenerator:
    """Runs one shard of an unCLIP image-variation run."""

    def __init__(self, config: UnclipConfig) -> None:
        self.config = config
        self.out = Path(config.out)

    def check_inputs(self) -> tuple[LabelledIndex, list[ClassInfo], Shard]:
        c = self.config
        for name in ("variations", "steps", "size", "batch_size"):
            if getattr(c, name) < 1:
                raise SynthgapError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(c, name)}")
        if c.per_class is not None and c.per_class < 1:
            raise SynthgapError(f"--per-class must be at least 1, got {c.per_class}")
        if c.size % 8:
            raise SynthgapError(f"--size must be a multiple of 8 (the VAE downsamples by 8), got {c.size}")
        if not 0 <= c.noise_level < 1000:
            raise SynthgapError(f"--noise-level must be in 0..999, got {c.noise_level}")
        if set(_fields(c.prompt)) - {"name"}:
            raise SynthgapError(f"--prompt may only use the field {{name}}, got {c.prompt!r}")
        SCHEDULERS.get(c.scheduler)
        choose_device_dtype(c.precision)
        shard = Shard.parse(c.shard)
        from synthgap.data.sources import open_source

        index = open_source(c.source, "train", c.data_root)
        return index, source_classes(index), shard

    def __call__(self, progress: bool = True) -> GenerationResult:
        start = time.perf_counter()
        # 1. check inputs (and index the real images)
        index, classes, shard = self.check_inputs()

        # 2. resolve the model without loading it
        self.model = resolve_model(self.config.model, self.config.revision)

        # 3. plan: k items per selected real image
        items = variation_items(index, classes, self.config.per_class, self.config.variations, self.config.seed)

        # 4-6. this shard's batches, the work left, generation (loading the pipeline only if needed), the merge
        return generator_shard(self, shard, classes, items, progress=progress, start=start)

    def load(self) -> None:
        device, dtype = choose_device_dtype(self.config.precision)
        pipe = load_pipeline(self.model, PIPELINE, dtype, safety_checker=False)
        self.pipe = prepare_pipeline(pipe, self.config.scheduler, device)

    def make_images(self, batch: list[Item], generators: list[torch.Generator]) -> list:
        c = self.config
        images = [load_rgb(item.source) for item in batch]
        return self.pipe(
            image=images,
            prompt=[fill_template(c.prompt, {"name": item.cls.name}) for item in batch],
            negative_prompt=[c.negative_prompt] * len(batch) if c.negative_prompt else None,
            noise_level=c.noise_level,
            num_inference_steps=c.steps,
            guidance_scale=c.guidance,
            height=c.size,
            width=c.size,
            generator=generators,
        ).images

    def describe(self, item: Item) -> dict[str, Any]:
        c = self.config
        return {
            **describe_common(item),
            "prompt": fill_template(c.prompt, {"name": item.cls.name}),
            **describe_sampling(c, self.model),
            "noise_level": c.noise_level,
            **describe_source(item, c.variations),
        }

    def settings(self, classes: list[ClassInfo]) -> dict[str, Any]:
        fixed = {k: v for k, v in asdict(self.config).items() if k not in ("out", "shard", "previews", "data_root")}
        return {
            "kind": "unclip",
            **fixed,
            "resolved_revision": self.model.revision,
            "dtype": str(choose_device_dtype(self.config.precision)[1]),
            "classes": [[cls.id, cls.name] for cls in classes],
        }


def _fields(template: str) -> list[str]:
    import string

    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def generate_unclip(config: UnclipConfig, progress: bool = True) -> GenerationResult:
    """Generate (or resume) one shard of an unCLIP image-variation run; see `UnclipGenerator`."""
    return UnclipGenerator(config)(progress)


@sampling_command(
    "unclip",
    short_help="unCLIP image variations of a real data source.",
    declare={"model": model_option(DEFAULT_UNCLIP_MODEL)},
    model=DEFAULT_UNCLIP_MODEL,
    size=768,
    batch_size=4,
    guidance=10.0,
    scheduler="default",
)
def command(
    options: SamplingOptions,
    *,
    source: RealSource,
    data_root: DataRoot = None,
    per_class: RealPerClass = None,
    variations: Annotated[int, typer.Option(help="Variations per real image.")] = 1,
    noise_level: Annotated[int, typer.Option(help="Noise on the image embedding, 0..999.")] = 0,
    prompt: Annotated[str, typer.Option(help="Optional text beside the image; may use {name}.")] = "",
) -> None:
    """unCLIP image variations of a real data source (the paper's oracle-prompt ablation). Rerun to resume."""
    config = UnclipConfig(
        **options.config_fields(),
        source=source,
        data_root=data_root,
        per_class=per_class,
        variations=variations,
        noise_level=noise_level,
        prompt=prompt,
    )
    run_sampling(generate_unclip, config, options)
