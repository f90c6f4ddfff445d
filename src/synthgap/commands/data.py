"""`synthgap data describe | stats`: what a data set holds, and its per-channel statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthgap.commands.options import PLAIN_HELP, DataRoot, Quiet, SkipBad
from synthgap.errors import SynthgapError

data_app = typer.Typer(help="Inspect data sources.", no_args_is_help=True, **PLAIN_HELP)


@data_app.command("describe", short_help="Layout, images per class and image sizes of a data set.")
def data_describe(
    path: Annotated[
        str,
        typer.Argument(
            help="A folder (a CIFAKE root, class folders, a synthgap generate output) or a data reference as a spec "
            "takes it: cifake:real, folder:DIR, generated:DIR, imagenet100:DIR, hf:/path/to/saved, hf:user/dataset."
        ),
    ],
    sample: Annotated[int, typer.Option(help="Images per data set whose size and mode are read.")] = 2000,
    class_map: Annotated[
        Path | None, typer.Option(help="CSV with folder,class rows grouping class folders into classes.")
    ] = None,
    data_root: DataRoot = None,
) -> None:
    """Print the detected layout (class folders, split folders), images per class with min / median / max and an
    imbalance flag, and image sizes/modes of a data set; for a generated set, its model, prompts and counts from the
    manifest; for an hf: dataset, its splits and the image and label columns it would read."""
    from synthgap.data.describe import describe

    typer.echo(describe(path, sample=sample, class_map=class_map, data_root=data_root))


@data_app.command("stats", short_help="Per-channel mean and std of a data set (a normalization).")
def data_stats(
    source: Annotated[str, typer.Argument(help="Data reference, e.g. cifake:real, cifake:synthetic, folder:DIR.")],
    split: Annotated[str, typer.Option(help="train | test.")] = "train",
    data_root: DataRoot = None,
    per_class: Annotated[int | None, typer.Option(help="Images per class (stratified, seeded; default all).")] = None,
    resolution: Annotated[int, typer.Option(help="Image side in pixels the statistics are measured at.")] = 32,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {mean, std} as JSON (a recipe.normalization value).")
    ] = False,
    skip_bad: SkipBad = False,
    quiet: Quiet = False,
) -> None:
    """Per-channel mean and std (0..1 scale) of a data set, cached; usable as a recipe's normalization."""
    import json

    from synthgap.config import validate
    from synthgap.data.config import DataPrep
    from synthgap.data.sources import DataRef
    from synthgap.data.stats import source_stats

    DataRef.parse(source)
    if split not in ("train", "test"):
        raise SynthgapError(f"split must be train or test, got {split!r}")
    prep = validate(DataPrep, {"data_root": data_root, "resolution": resolution, "skip_bad": skip_bad}, where="options")
    stats, count = source_stats(prep, source, split, per_class, progress=not quiet)
    if as_json:
        typer.echo(json.dumps({"mean": list(stats.mean), "std": list(stats.std)}))
        return
    typer.echo(f"{source} ({split}, {count} images at {resolution} px)")
    typer.echo("         red      green    blue")
    typer.echo("mean  " + "  ".join(f"{v:.4f}" for v in stats.mean))
    typer.echo("std   " + "  ".join(f"{v:.4f}" for v in stats.std))
