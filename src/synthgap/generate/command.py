"""How a sampling generator declares its command (`synthgap generate NAME`): the options every sampling command
shares, declared once in `SamplingOptions`, and `sampling_command`, the decorator a generator's module puts on the
function that turns them and its own options into its config.

    @sampling_command("unclip", short_help="...", model=DEFAULT_UNCLIP_MODEL, size=768)
    def command(options: SamplingOptions, *, source: RealSource, variations: Annotated[int, typer.Option(...)] = 1):
        run_sampling(generate_unclip, UnclipConfig(**options.config_fields(), source=source, ...), options)

`commands/generate.py` imports the generator modules it lists and adds each registered command to the command line.
This module, and so every generator's module, imports neither torch nor diffusers: `synthgap generate NAME --help`
and the checks of a command line stay fast.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from synthgap.commands.options import Quiet
from synthgap.generate.models import DEFAULT_TEXT2IMG_MODEL, SCHEDULERS
from synthgap.registry import Registry


def model_option(default: str) -> Any:
    """The `--model` option of a command whose default model is `default`."""
    return Annotated[
        str,
        typer.Option(
            help=f"{default} (the default), another Hugging Face model id, or a local diffusers folder.",
            show_default=False,
        ),
    ]


Text2ImgModel = model_option(DEFAULT_TEXT2IMG_MODEL)
Revision = Annotated[str | None, typer.Option(help="Model revision (branch, tag or commit).")]
GenPrecision = Annotated[str, typer.Option(help="auto (fp16 on CUDA, else fp32) | fp32 | fp16 | bf16.")]
Scheduler = Annotated[
    str,
    typer.Option(
        help=" | ".join(name for name in SCHEDULERS.names() if name != "default") + " | default (the model's own)."
    ),
]
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
    typer option and its default the option's, unless the command changes them (`sampling_command`).

    The fields up to `previews` are fields of every generation config (`config_fields`); the rest say where the
    generation runs (`run_sampling`)."""

    out: Annotated[Path, typer.Option(help="Output folder: <class>/<class>_<index>.png, manifest.jsonl, previews/.")]
    model: Text2ImgModel = DEFAULT_TEXT2IMG_MODEL
    revision: Revision = None
    seed: Annotated[int, typer.Option(help="Base seed; image seeds derive from (seed, class, index).")] = 0
    steps: Annotated[int, typer.Option(help="Denoising steps.")] = 50
    size: Annotated[int, typer.Option(help="Image side in pixels (multiple of 8).")] = 512
    batch_size: Annotated[int, typer.Option(help="Images per pipeline call (fixed for a run: part of resume).")] = 8
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 7.5
    scheduler: Scheduler = "ddim"
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
# The order of a sampling command's options in its --help: the shared ones and the commands' own, merged.
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


@dataclass(frozen=True)
class SamplingCommand:
    """A registered `synthgap generate NAME`: `parsed` takes every option as a keyword (its signature is what typer
    reads the options from)."""

    name: str
    short_help: str
    parsed: Callable[..., None]


SAMPLING_COMMANDS: Registry[SamplingCommand] = Registry("sampling command")


def sampling_command(
    name: str, *, short_help: str, declare: Mapping[str, Any] | None = None, **defaults: Any
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register `command(options, **own)` as `synthgap generate NAME`, taking the options of `SamplingOptions` as well
    as its own (keyword-only typer parameters; a name of its own must have its place in SAMPLING_HELP_ORDER).
    `defaults` are this command's defaults of shared options, `declare` its own typer declarations of some (another
    help text). The function is returned as it was, for the Python API and tests."""
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
        SAMPLING_COMMANDS.add(name, SamplingCommand(name, short_help, parsed))
        return command

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


def run_sampling(run: Callable[..., Any], config: Any, options: SamplingOptions) -> None:
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
