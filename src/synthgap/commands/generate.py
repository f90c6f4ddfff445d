"""`synthgap generate text2img | img2img | unclip | adapt`: synthetic training sets from diffusers pipelines.

The sampling commands (`text2img`, `img2img`, `unclip`) declare their shared options once, in `SamplingOptions`;
where a generation runs (this process or Ray shards) is `generate.distribute.generate`'s to decide.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from synthgap.commands.options import PLAIN_HELP, DataRoot, Quiet

# Names from modules that import torch, repeated here so that --help and the checks of the command line do not;
# tests/test_cli.py checks that they agree.
DEFAULT_TEXT2IMG_MODEL = "CompVis/stable-diffusion-v1-4"
DEFAULT_UNCLIP_MODEL = "stabilityai/stable-diffusion-2-1-unclip"

generate_app = typer.Typer(
    help="Generate synthetic training sets with diffusers pipelines.", no_args_is_help=True, **PLAIN_HELP
)

Text2ImgModel = Annotated[
    str,
    typer.Option(
        help=f"{DEFAULT_TEXT2IMG_MODEL} (the default), another Hugging Face model id, or a local diffusers folder.",
        show_default=False,
    ),
]
UnclipModel = Annotated[
    str,
    typer.Option(
        help=f"{DEFAULT_UNCLIP_MODEL} (the default), another Hugging Face model id, or a local diffusers folder.",
        show_default=False,
    ),
]
Revision = Annotated[str | None, typer.Option(help="Model revision (branch, tag or commit).")]
GenPrecision = Annotated[str, typer.Option(help="auto (fp16 on CUDA, else fp32) | fp32 | fp16 | bf16.")]
RealSource = Annotated[str, typer.Option(help="Real images (train split), e.g. cifake:real, folder:DIR.")]
RealPerClass = Annotated[int | None, typer.Option(help="Real images per class (default: all).")]
TemplateText = Annotated[str, typer.Option(help="Free text for the {text} template field.")]
Backgrounds = Annotated[Path | None, typer.Option(help="Backgrounds for {background}, one per line.")]
Lora = Annotated[
    Path | None,
    typer.Option(
        help="A LoRA folder (synthgap generate adapt, or pytorch_lora_weights.safetensors).", show_default=False
    ),
]
LoraScale = Annotated[float, typer.Option(help="LoRA scale (Real-Fake samples at 0.5).")]


@dataclass(frozen=True, kw_only=True)
class SamplingOptions:
    """The options `generate text2img`, `img2img` and `unclip` share, each declared once: a field's annotation is its
    typer option and its default the option's, unless the command changes them (`_sampling_command`).

    The fields up to `previews` are fields of every generation config (`config_fields`); the rest say where the
    generation runs (`_generate`)."""

    out: Annotated[Path, typer.Option(help="Output folder: <class>/<class>_<index>.png, manifest.jsonl, previews/.")]
    model: Text2ImgModel = DEFAULT_TEXT2IMG_MODEL
    revision: Revision = None
    seed: Annotated[int, typer.Option(help="Base seed; image seeds derive from (seed, class, index).")] = 0
    steps: Annotated[int, typer.Option(help="Denoising steps.")] = 50
    size: Annotated[int, typer.Option(help="Image side in pixels (multiple of 8).")] = 512
    batch_size: Annotated[int, typer.Option(help="Images per pipeline call (fixed for a run: part of resume).")] = 8
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 7.5
    scheduler: Annotated[str, typer.Option(help="ddim | dpm++ | unipc | euler_a | default (the model's own).")] = "ddim"
    negative_prompt: Annotated[str, typer.Option(help="Negative prompt for every image.")] = ""
    precision: GenPrecision = "auto"
    shard: Annotated[
        str, typer.Option(help="Do shard i of n (0-based, e.g. 3/8); run all n, in any order or at once.")
    ] = "0/1"
    previews: Annotated[bool, typer.Option(help="Write previews/<class>.png grids when done.")] = True
    backend: Annotated[
        str, typer.Option(help="local (this process, --shard) | ray (--shards N as Ray tasks, then merged).")
    ] = "local"
    shards: Annotated[int | None, typer.Option(help="ray: run the generation as N shards, one Ray task each.")] = None
    address: Annotated[
        str | None, typer.Option(help="ray: address of an existing Ray cluster (default: start Ray here).")
    ] = None
    gpus_per_shard: Annotated[
        float | None, typer.Option(help="ray: GPUs of each shard (default: 1 where there are GPUs, else 0).")
    ] = None
    cpus_per_shard: Annotated[int, typer.Option(help="ray: CPU cores of each shard.")] = 1
    quiet: Quiet = False

    def config_fields(self) -> dict[str, Any]:
        """The values that every generation config (Text2ImgConfig, Img2ImgConfig, UnclipConfig) takes from here."""
        return {field.name: getattr(self, field.name) for field in fields(self) if field.name not in _WHERE_IT_RUNS}


_WHERE_IT_RUNS = ("backend", "shards", "address", "gpus_per_shard", "cpus_per_shard", "quiet")
# The order of a sampling command's options in its --help: the shared ones and the command's own, merged.
SAMPLING_HELP_ORDER = (
    "out",
    "source",
    "model",
    "revision",
    "data_root",
    "classes",
    "per_class",
    "variations",
    "strength",
    "noise_level",
    "prompt",
    "seed",
    "steps",
    "size",
    "batch_size",
    "guidance",
    "scheduler",
    "template",
    "negative_prompt",
    "text",
    "backgrounds",
    "precision",
    "safety_checker",
    "lora",
    "lora_scale",
    "shard",
    "previews",
    *_WHERE_IT_RUNS,
)


def _sampling_command(
    name: str, *, short_help: str, declare: Mapping[str, Any] | None = None, **defaults: Any
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register `command(options, **own)` as `synthgap generate NAME`, taking the options of `SamplingOptions` as well
    as its own (keyword-only typer parameters). `defaults` are this command's defaults of shared options, `declare`
    its own typer declarations of some (another help text)."""
    shared = _shared_parameters(declare or {}, defaults)
    default_model = next(parameter.default for parameter in shared if parameter.name == "model")

    def register(command: Callable[..., None]) -> Callable[..., None]:
        own = [
            parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for parameter in inspect.signature(command, eval_str=True).parameters.values()
            if parameter.name != "options"
        ]
        parameters = sorted([*shared, *own], key=lambda parameter: SAMPLING_HELP_ORDER.index(parameter.name))

        @functools.wraps(command)
        def parsed(**values: Any) -> None:
            options = {parameter.name: values.pop(parameter.name) for parameter in shared}
            options["model"] = options["model"] or default_model  # `--model ''`: the command's default model
            command(SamplingOptions(**options), **values)

        parsed.__signature__ = inspect.Signature(parameters)  # what typer reads the options from
        parsed.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        return generate_app.command(name, short_help=short_help)(parsed)

    return register


def _shared_parameters(declare: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[inspect.Parameter]:
    """The fields of `SamplingOptions` as typer parameters, with a command's own defaults and declarations."""
    hints = get_type_hints(SamplingOptions, include_extras=True)
    unknown = sorted((set(declare) | set(defaults)) - set(hints))
    if unknown:
        raise TypeError(f"not options of SamplingOptions: {', '.join(unknown)}")
    return [
        inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=declare.get(field.name, hints[field.name]),
            default=defaults.get(field.name, inspect.Parameter.empty if field.default is MISSING else field.default),
        )
        for field in fields(SamplingOptions)
    ]


def _generate(run: Callable[..., Any], config: Any, options: SamplingOptions) -> None:
    """Run the generation where the options say (`generate.distribute.generate`) and print what it made."""
    from synthgap.generate.distribute import generate

    results, merged = generate(
        run,
        config,
        backend=options.backend,
        shards=options.shards,
        address=options.address,
        gpus=options.gpus_per_shard,
        cpus=options.cpus_per_shard,
        progress=not options.quiet,
    )
    for result in results:
        typer.echo(result.summary())
    if merged is not None:
        typer.echo(f"merged {len(results)} shards: {merged.total_images} images, manifest {merged.manifest}")


@_sampling_command("text2img", short_help="Text-to-image from the prompts of a class list.")
def generate_text2img(
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
    from synthgap.generate.prompts import DEFAULT_TEMPLATES
    from synthgap.generate.text2img import Text2ImgConfig
    from synthgap.generate.text2img import generate_text2img as run_text2img

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
    _generate(run_text2img, config, options)


@_sampling_command(
    "unclip",
    short_help="unCLIP image variations of a real data source.",
    declare={"model": UnclipModel},
    model=DEFAULT_UNCLIP_MODEL,
    size=768,
    batch_size=4,
    guidance=10.0,
    scheduler="default",
)
def generate_unclip(
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
    from synthgap.generate.unclip import UnclipConfig
    from synthgap.generate.unclip import generate_unclip as run_unclip

    config = UnclipConfig(
        **options.config_fields(),
        source=source,
        data_root=data_root,
        per_class=per_class,
        variations=variations,
        noise_level=noise_level,
        prompt=prompt,
    )
    _generate(run_unclip, config, options)


ScheduleSteps = Annotated[int, typer.Option(help="Denoising steps of the full schedule (strength × steps are run).")]


@_sampling_command(
    "img2img",
    short_help="Image-to-image from each real image under its class prompt.",
    declare={"steps": ScheduleSteps},
    steps=30,
    guidance=2.0,
)
def generate_img2img(
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
    from synthgap.generate.img2img import DEFAULT_IMG2IMG_TEMPLATES, Img2ImgConfig
    from synthgap.generate.img2img import generate_img2img as run_img2img

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
    _generate(run_img2img, config, options)


@generate_app.command("adapt", short_help="LoRA adaptation of a text-to-image model to real images.")
def generate_adapt(
    out: Annotated[Path, typer.Option(help="LoRA folder to write (rerun the same command to resume).")],
    source: Annotated[str, typer.Option(help="Real images to adapt to (train split), e.g. cifake:real, folder:DIR.")],
    model: Text2ImgModel = DEFAULT_TEXT2IMG_MODEL,
    revision: Revision = None,
    data_root: DataRoot = None,
    classes: Annotated[
        str | None,
        typer.Option(help="Class list for prompt names (its classes must be the source's).", show_default=False),
    ] = None,
    template: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TEMPLATE",
            help="Prompt template of the training images (repeatable; default 'a photo of a {name}').",
        ),
    ] = None,
    per_class: RealPerClass = None,
    rank: Annotated[int, typer.Option(help="LoRA rank (DataDream 16, Real-Fake 4).")] = 8,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-4,
    epochs: Annotated[int, typer.Option(help="Epochs over the real images (per LoRA).")] = 10,
    steps: Annotated[
        int | None, typer.Option(help="Optimizer steps per LoRA instead of whole epochs.", show_default=False)
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Real images per step.")] = 4,
    size: Annotated[
        int | None,
        typer.Option(
            help="Training resolution (centre square, multiple of 8; default: the model's own, e.g. 512 for Stable "
            "Diffusion v1)."
        ),
    ] = None,
    text_encoder: Annotated[bool, typer.Option("--text-encoder", help="Also adapt the text encoder.")] = False,
    one_per_class: Annotated[bool, typer.Option("--one-per-class", help="One LoRA per class (sub-folders).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the LoRA init, data order, noise and timesteps.")] = 0,
    precision: Annotated[
        str,
        typer.Option(
            help="auto (bf16 on CUDA GPUs that have it, fp16 with loss scaling on older ones; fp32 on the "
            "CPU) | fp32 | fp16 | bf16."
        ),
    ] = "auto",
    quiet: Quiet = False,
) -> None:
    """LoRA adaptation of a text-to-image model to real images with their class prompts (DataDream, Real-Fake).

    Saves after every epoch; rerun the same command to resume. Use the result with `generate text2img --lora OUT`
    or `generate img2img --lora OUT`."""
    from synthgap.generate.adapt import AdaptConfig, adapt
    from synthgap.generate.models import DEFAULT_TEXT2IMG_MODEL

    config = AdaptConfig(
        out=out,
        source=source,
        model=model or DEFAULT_TEXT2IMG_MODEL,
        revision=revision,
        data_root=data_root,
        classes=classes,
        templates=tuple(template or ("a photo of a {name}",)),
        per_class=per_class,
        rank=rank,
        lr=lr,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        size=size,
        text_encoder=text_encoder,
        one_per_class=one_per_class,
        seed=seed,
        precision=precision,
    )
    typer.echo(adapt(config, progress=not quiet).summary())
