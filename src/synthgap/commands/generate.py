"""`synthgap generate text2img | unclip | img2img | adapt`: synthetic training sets from diffusers pipelines.

A sampling generator declares its own command in its module (`generate/command.py` says how); listing the module in
`GENERATORS` adds it here. Those modules import neither torch nor diffusers, so `--help` and the checks of a command
line stay fast.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from synthgap.commands.options import PLAIN_HELP, DataRoot, Quiet
from synthgap.generate.command import SAMPLING_COMMANDS, RealPerClass, Revision, Text2ImgModel
from synthgap.generate.models import DEFAULT_TEXT2IMG_MODEL

# The sampling generators, in the order `synthgap generate --help` lists them: modules of synthgap.generate.
GENERATORS = ("text2img", "unclip", "img2img")

generate_app = typer.Typer(
    help="Generate synthetic training sets with diffusers pipelines.", no_args_is_help=True, **PLAIN_HELP
)


def _add_generators() -> None:
    for name in GENERATORS:
        importlib.import_module(f"synthgap.generate.{name}")  # registers its command
        command = SAMPLING_COMMANDS.get(name)
        generate_app.command(name, short_help=command.short_help)(command.parsed)


_add_generators()


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
