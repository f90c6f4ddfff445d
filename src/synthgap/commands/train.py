"""`synthgap train`: one student trained from scratch and tested on real images (one process, several, or several
machines). `synthgap.cli` registers it as a top-level command.

Its option help names registry entries (families, presets, augmentations) through placeholders filled in when that
help page is shown (`RegistryListsCommand`), so the registries (and torch) are imported for that page alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from synthgap import api
from synthgap.commands.options import DataRoot, Quiet, RerunChanged, SkipBad
from synthgap.errors import SynthgapError

# What the recipe presets are, for `train --help`; a preset without a note here is listed by its name alone.
PRESET_NOTES = {
    "fast": "the CIFAR speed recipe: batch 512, triangular LR, label smoothing, flip test-time augmentation, 16 epochs",
    "fast_imagenet": "its 224 px counterpart",
}


def registry_lists() -> dict[str, str]:
    """{placeholder: `a | b | c`} for the help texts, from the registries as they are now: a family or preset
    registered after start-up (a plugin, a test) is listed. Imports the registries, and torch with them."""
    from synthgap.data.transforms import AUGMENTATIONS, NORMALIZATIONS
    from synthgap.models import FAMILIES
    from synthgap.train.presets import RECIPE_PRESETS

    return {
        "{families}": " | ".join(FAMILIES.names()),
        "{recipe presets}": " | ".join(
            f"{name} ({PRESET_NOTES[name]})" if name in PRESET_NOTES else name for name in RECIPE_PRESETS.names()
        ),
        "{augmentations}": " | ".join(AUGMENTATIONS.names()),
        "{normalizations}": " | ".join(NORMALIZATIONS),
    }


class RegistryListsCommand(TyperCommand):
    """A command whose option help names registry entries through the placeholders of `registry_lists`. They are
    filled in when its help is shown, so that importing the registries (torch, seconds) is paid by that help page
    only: `synthgap --help`, a command line error and the other commands' help stay fast."""

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        lists = registry_lists()
        for param in self.params:
            text = getattr(param, "help", None)
            if text:
                for placeholder, names in lists.items():
                    text = text.replace(placeholder, names)
                param.help = text
        super().format_help(ctx, formatter)


def train(
    config: Annotated[Path | None, typer.Option(help="YAML run config; options below override it.")] = None,
    train_data: Annotated[
        str | None, typer.Option(help="Training data, e.g. cifake:real, cifake:synthetic, folder:DIR.")
    ] = None,
    test_data: Annotated[str | None, typer.Option(help="Test data (its test split), default cifake:real.")] = None,
    data_root: DataRoot = None,
    per_class: Annotated[
        str | None,
        typer.Option(help="Training images per class (stratified, seeded): N, max:N (up to N), or balanced."),
    ] = None,
    test_per_class: Annotated[
        int | None, typer.Option(help="Test images per class (stratified, seeded; default all).")
    ] = None,
    resolution: Annotated[int | None, typer.Option(help="Image side in pixels (default 32).")] = None,
    storage_resolution: Annotated[
        int | None,
        typer.Option(
            help="Shorter side images are decoded and cached at (default: the resolution); larger, e.g. 256 for "
            "224: rrc crops from the stored image, test images are centre-cropped."
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="Recipe preset: {recipe presets}; the options below override its values (default default)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default 15; fast: 16).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default 128; fast: 512).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default 0.1; fast: 0.4 at batch 512).")] = None,
    augmentation: Annotated[
        str | None,
        typer.Option(help="{augmentations} (default standard)."),
    ] = None,
    normalization: Annotated[str | None, typer.Option(help="{normalizations} (default imagenet).")] = None,
    precision: Annotated[str | None, typer.Option(help="auto | fp32 | bf16 | fp16 (default auto).")] = None,
    width: Annotated[
        float | None, typer.Option(help="Width multiplier of the model: ResNet channels, ViT embedding (default 1.0).")
    ] = None,
    stem: Annotated[
        str | None,
        typer.Option(
            help="auto (cifar up to 64 px, else imagenet) | imagenet (unmodified) | cifar (3×3 conv, no pool) "
            "(default auto)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of initialisation, shuffling and augmentation (default 0).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Run name (default baseline-<data>-s<seed>).")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model family: {families} (default resnet18)."),
    ] = None,
    side: Annotated[
        str | None,
        typer.Option(help="real | synthetic: which side the training data is (default: from cifake:/generated:)."),
    ] = None,
    skip_bad: SkipBad = False,
    out: Annotated[
        Path, typer.Option(help="Experiment folder: results.jsonl here, the run in OUT/<run name>/.")
    ] = Path("runs"),
    rerun_changed: RerunChanged = False,
    quiet: Quiet = False,
    nproc: Annotated[
        int,
        typer.Option(
            help="Train the run as N processes on this machine (DistributedDataParallel: one per GPU, gloo on the "
            "CPU); the batch size is the global batch, shared equally."
        ),
    ] = 1,
    nnodes: Annotated[
        int,
        typer.Option(
            help="Machines the run trains on, each running this same command (e.g. one srun task per node) with "
            "--nproc processes; needs --rdzv-endpoint and an --out every machine sees at the same path."
        ),
    ] = 1,
    rdzv_endpoint: Annotated[
        str | None,
        typer.Option(help="HOST:PORT where the machines' processes meet (the first machine, a free port)."),
    ] = None,
    sync_bn: Annotated[
        bool,
        typer.Option(
            "--sync-bn",
            help="With --nproc N on N GPUs: BatchNorm statistics over the whole batch (SyncBatchNorm), not each "
            "process's share.",
        ),
    ] = False,
) -> None:
    """Train one student from scratch and test it on real images; appends one line to OUT/results.jsonl.

    The same command again prints the recorded result without training; the same run name with other settings
    (data, sizes, recipe, model) stops with the changed settings named."""
    from synthgap.config import read_yaml

    if train_data is None and "train" not in ((read_yaml(config) if config else {}).get("data") or {}):
        raise SynthgapError(  # training on a default set nobody asked for costs minutes and answers nothing
            "synthgap train needs the training data: --train-data cifake:real (or cifake:synthetic, folder:DIR, "
            "generated:DIR), or data.train in --config"
        )
    record = api.train(
        train_data, config=config, out=out, rerun_changed=rerun_changed, progress=not quiet,
        name=name, seed=seed, side=side, model=model, test_data=test_data, data_root=data_root, per_class=per_class,
        test_per_class=test_per_class, resolution=resolution, storage_resolution=storage_resolution,
        skip_bad=skip_bad or None, preset=preset, epochs=epochs, batch_size=batch_size, lr=lr,
        augmentation=augmentation, normalization=normalization, precision=precision, width=width, stem=stem,
        sync_bn=sync_bn or None, nproc=nproc, nnodes=nnodes, rdzv_endpoint=rdzv_endpoint,
    )  # fmt: skip
    if record is None or os.environ.get("WORLD_SIZE"):  # one of several launched processes: the launcher reports
        return
    skipped = getattr(record, "skipped_images", 0)
    typer.echo(
        f"{record.run}: top-1 {record.top1:.2f}%  top-5 {record.top5:.2f}%  "
        f"({record.train_images} training images, {record.seconds:.0f} s) → {out / 'results.jsonl'}"
        + (f"\nskipped {skipped} unreadable images (--skip-bad)" if skipped else "")
    )
