"""`synthgap curate` and `synthgap export`: what is done with a generated set once it exists. `synthgap.cli` registers
them as top-level commands, with their one-line help."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthgap.commands.options import Quiet


def curate(
    generated: Annotated[Path, typer.Argument(help="A `synthgap generate` output folder (manifest.jsonl).")],
    clip_model: Annotated[
        str, typer.Option(help="CLIP model: a local folder (config.json, .safetensors) or a Hugging Face id.")
    ],
    rule: Annotated[
        str,
        typer.Option(
            help="confidence (own-class probability > 1/C) | agreement (CLIP's top class is the image's) "
            "| top:K (the K best-scoring images of each class)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output folder: a generated set of the kept images (rerun to finish).")],
    template: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TEMPLATE", help="CLIP text template with {name} (repeatable; default 'a photo of a {name}.')."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per CLIP forward pass.")] = 64,
    quiet: Quiet = False,
) -> None:
    """Keep the images of a generated set that zero-shot CLIP assigns to their class (He et al. 2023, DISEF).

    Writes OUT as a new generated set (hard links to the kept files), kept.csv and clip_scores.csv; train on it
    with `generated:OUT`."""
    from synthgap.generate.curate import DEFAULT_CURATE_TEMPLATES, CurateConfig, curate_generated

    config = CurateConfig(
        generated=generated,
        clip_model=clip_model,
        rule=rule,
        out=out,
        templates=tuple(template or DEFAULT_CURATE_TEMPLATES),
        batch_size=batch_size,
    )
    typer.echo(curate_generated(config, progress=not quiet).summary())


def export(
    generated: Annotated[Path, typer.Argument(help="A `synthgap generate` or `synthgap curate` output folder.")],
    to: Annotated[Path, typer.Option(help="Output folder: data/*.parquet and README.md (rerun to finish).")],
    push: Annotated[
        str | None, typer.Option(metavar="REPO_ID", help="Also upload to this Hub dataset repository.")
    ] = None,
    private: Annotated[bool, typer.Option(help="Create the Hub repository as private (with --push).")] = False,
    images_per_shard: Annotated[int, typer.Option(help="Images per parquet file.")] = 1000,
    quiet: Quiet = False,
) -> None:
    """Write a generated set as parquet shards with a dataset card, ready for the Hub.

    The shards hold the image bytes, the label (a ClassLabel in the generation's class order) and every scalar
    manifest field (prompt, seed, guidance, steps and the rest); README.md names the model, revision, scheduler,
    prompts and images per class, with a licence to fill in. Read it back with hf:TO or
    datasets.load_dataset(TO); --push uploads it when the hub is reachable."""
    from synthgap.generate.export import ExportConfig, export_generated

    config = ExportConfig(generated=generated, to=to, images_per_shard=images_per_shard, push=push, private=private)
    typer.echo(export_generated(config, progress=not quiet).summary())
