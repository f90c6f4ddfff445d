"""The `synthgap` command line. Every command is a thin layer over a stage's functions.

Start-up is kept short: this module imports typer, `synthgap.api` and `synthgap.commands` only, and a command
imports the stages it runs when it runs. `synthgap run` checks the command line and the spec's keys and kinds before
the training stack (torch) is imported, so a typo costs a fraction of a second (benchmarks/bench_startup.py). Every
error is one `synthgap: error: ...` line on stderr and exit code 2; an error that comes from an option (`--n 25`,
`--set KEY=...`) names the option rather than the spec file.

Help is plain text (no rich panels), wrapped to the terminal: option names are never cut and boolean options are
flags (`--quiet`, `--previews/--no-previews`). The families, presets and augmentations that `train --help` lists come
from their registries when that page is shown (`commands.train.RegistryListsCommand`), which imports torch for that
page alone;
lists in help that stays torch-free (the generate schedulers, `run --backend`) are written out and kept in step with
their sources by tests/test_cli.py. Options that several commands share are declared once in
`synthgap.commands.options`; `train`, the `generate` commands and the `data` commands live in `synthgap.commands`.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from synthgap import api
from synthgap.commands import sets, train
from synthgap.commands.data import data_app
from synthgap.commands.generate import generate_app
from synthgap.commands.options import (
    PLAIN_HELP,
    DataRoot,
    DryRun,
    ModelCacheDir,
    NList,
    Quiet,
    RerunChanged,
    SetValues,
    SkipBad,
)
from synthgap.errors import SynthgapError, did_you_mean, unknown_choice

app = typer.Typer(
    help="Measure where the gap between synthetic-trained and real-trained image classifiers lives.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    **PLAIN_HELP,
)
# Names from modules that import torch, repeated here so that --help and the checks of the command line do not;
# tests/test_cli.py checks that they agree.
BACKENDS = ("local", "ray", "slurm")  # synthgap.experiments.backends.BACKENDS


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"synthgap {version('synthgap')}")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Measure where the gap between synthetic-trained and real-trained image classifiers lives, and what closes
    it."""


app.add_typer(data_app, name="data")
app.add_typer(generate_app, name="generate")

app.command(short_help="Train one student and test it on real images.", cls=train.RegistryListsCommand)(train.train)


def _int_list(text: str | None, option: str = "") -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        where = f"{option}: " if option else ""
        raise SynthgapError(f"{where}expected comma-separated integers, got {text!r}") from None


def _flag(field: str, value: object) -> str:
    """How an option of `synthgap run` was written on the command line, for an error that blames it."""
    if field == "overrides":
        return f"--set {shlex.quote(str(value))}"
    if field == "skip_bad":
        return "--skip-bad"
    if isinstance(value, list):
        text = ",".join(str(item) for item in value)
    else:
        text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"--{field.replace('_', '-')} {shlex.quote(text)}"


@app.command(short_help="Run an experiment spec (baselines, layer sweeps, ablations).")
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC.yaml", help="Experiment spec (see configs/).")],
    out: Annotated[Path, typer.Option(help="Experiment folder: results.jsonl, runs/, report.")] = Path("runs/exp"),
    data_root: DataRoot = None,
    seeds: Annotated[str | None, typer.Option(help="Override every block's seeds, e.g. 0,1,2.")] = None,
    n: NList = None,
    epochs: Annotated[int | None, typer.Option(help="Override recipe.epochs.")] = None,
    per_class: Annotated[
        str | None,
        typer.Option(
            help="Override data.per_class: N, max:N (up to N per class), balanced, or matched (the same "
            "number on the real and the synthetic side)."
        ),
    ] = None,
    width: Annotated[float | None, typer.Option(help="Override model.width.")] = None,
    set_values: SetValues = None,
    model_cache: ModelCacheDir = None,
    skip_bad: SkipBad = False,
    rerun_changed: RerunChanged = False,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="When a run fails (e.g. diverges), still run the others.")
    ] = False,
    backend: Annotated[
        str,
        typer.Option(help="Where runs execute: local (this process) | ray (Ray tasks) | slurm (jobs via submitit)."),
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="ray: address of an existing Ray cluster (default: start Ray here).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="ray without --address: runs at once on this machine; slurm: jobs in the queue at once."),
    ] = None,
    cpus_per_run: Annotated[
        int | None,
        typer.Option(
            help="CPU threads of each run, on every backend (default: the spec's resources.cpus; unset: all of this "
            "process's threads locally, 1 per process on ray and slurm). Part of each run's identity."
        ),
    ] = None,
    gpus_per_run: Annotated[
        float | None,
        typer.Option(
            help="GPUs of each run: a fraction, e.g. 0.5 (ray, slurm: runs share a GPU), or N whole GPUs that train "
            "each run as N processes (DistributedDataParallel) on one machine. Default: the spec's resources.gpus, 0."
        ),
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            help="Train each run's students in N processes on one machine (DistributedDataParallel; one GPU each, or "
            "on the CPU sharing its threads with gloo); on ray and slurm they start on the worker. Part of each run's "
            "identity."
        ),
    ] = 1,
    nodes_per_run: Annotated[
        int | None,
        typer.Option(
            help="slurm: machines each run trains on, one task each starting its processes (--gpus-per-run or "
            "--nproc of them); they train the run together. Default: the spec's resources.nodes, 1.",
            show_default=False,
        ),
    ] = None,
    slurm_partition: Annotated[str | None, typer.Option(help="slurm: partition to submit to.")] = None,
    slurm_time: Annotated[int | None, typer.Option(help="slurm: time limit of each job in minutes.")] = None,
    slurm_cluster: Annotated[
        str | None, typer.Option(help="slurm: submitit cluster (default: slurm when sbatch exists; 'local' to try).")
    ] = None,
    dry_run: DryRun = False,
    quiet: Quiet = False,
) -> None:
    """Run an experiment spec (baselines, layer sweeps, data reduction, ablations).

    Rerunning the same command resumes where it stopped: a run is skipped when OUT records it with the same name and
    settings (fingerprint). A recorded run whose settings changed stops the command, naming what changed, unless
    --rerun-changed is given; OUT/spec.yaml always describes the records in OUT."""
    if backend not in BACKENDS:
        raise SynthgapError(f"--backend: {unknown_choice('backend', backend, BACKENDS)}")
    options = api.RunOptions(
        data_root=data_root, epochs=epochs, per_class=per_class, width=width, seeds=_int_list(seeds, "--seeds"),
        n=_int_list(n, "--n"), overrides=set_values or None, skip_bad=skip_bad,
        backend=backend, address=address, workers=workers, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
        nproc=nproc, nodes_per_run=nodes_per_run,
        slurm_partition=slurm_partition, slurm_time=slurm_time, slurm_cluster=slurm_cluster, model_cache=model_cache,
        rerun_changed=rerun_changed, keep_going=keep_going, progress=not quiet,
    )  # fmt: skip
    as_typed = {"seeds": seeds, "n": n}  # the lists as given (`--seeds ,`), not as parsed

    spec = api.experiment_spec(spec_path, options, lambda field, value: _flag(field, as_typed.get(field) or value))
    if dry_run:
        typer.echo(api.dry_run(spec, out, options))
        return
    records = api.run_records(spec, out, options)
    _print_flags(records)
    skipping = [r.skipped_images for r in records if r.skipped_images]
    if skipping:
        typer.echo(
            f"{len(skipping)} runs skipped unreadable images (up to {max(skipping)} each; --skip-bad; the "
            "count of each run is its skipped_images in results.jsonl)"
        )
    typer.echo(f"{len(records)} runs finished in {out / 'results.jsonl'}; report: {api.report(out)}")


def _print_flags(records: list) -> None:
    """Results that should come with a warning (a student at chance, S ≥ R, ...), one line each, on stderr."""
    from synthgap.report.sanity import sanity_flags

    for flag in sanity_flags(records):
        typer.echo(f"synthgap: warning: {flag}", err=True)


app.command(short_help="Keep the generated images zero-shot CLIP assigns to their class.")(sets.curate)
app.command(short_help="Write a generated set as a Hugging Face dataset (parquet + card).")(sets.export)


@app.command(short_help="CIFAKE demo: R and S baselines, a small layer sweep, a report.")
def demo(
    out: Annotated[Path, typer.Option(help="Output folder (results.jsonl, runs/, report.md).")] = Path("synthgap-demo"),
    data_root: DataRoot = None,
    per_class: Annotated[int | None, typer.Option(help="Training images per class and side (default 200).")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs of each baseline (layer-transfer runs train half as long; default 6).")
    ] = None,
    width: Annotated[
        float | None, typer.Option(help="ResNet-18 width multiplier (default 0.25: the demo stays fast on a CPU).")
    ] = None,
    n: NList = None,
    model_cache: ModelCacheDir = None,
    quiet: Quiet = False,
) -> None:
    """CIFAKE demo: R and S baselines, a small layer sweep both ways, and a report. Rerun to resume."""
    from synthgap.demo import demo_summary, run_demo

    sizes = {"per_class": per_class, "epochs": epochs, "width": width}
    records = run_demo(
        out,
        data_root=data_root,
        n=_int_list(n, "--n"),
        model_cache=model_cache,
        progress=not quiet,
        **{key: value for key, value in sizes.items() if value is not None},
    )
    typer.echo(demo_summary(records))
    _print_flags(records)
    typer.echo(f"\nresults: {out / 'results.jsonl'}   report: {out / 'report.md'} (and report.html, figures/)")


@app.command(short_help="Per-layer diagnostics of the R and S baselines (CKA, probes).")
def analyze(
    folder: Annotated[
        Path, typer.Argument(help="An experiment folder: results.jsonl with R and S baselines, spec.yaml.")
    ],
    model_cache: ModelCacheDir = None,
    probe_per_class: Annotated[
        int, typer.Option(help="Real training images per class that train each layer's linear probe.")
    ] = 100,
    max_images: Annotated[
        int,
        typer.Option(
            help="At most this many images per set (real test, real training, synthetic training), class-stratified; "
            "0: all of the experiment's images."
        ),
    ] = 2500,
    quiet: Quiet = False,
) -> None:
    """Per-layer diagnostics of the R and S baselines: CKA, linear probes, synthetic-vs-real distances.

    Writes FOLDER/analysis.jsonl (one line per layer and measure); `synthgap report FOLDER` then adds a section."""
    from synthgap.analysis import read_analysis, summary_lines

    path = api.analyze(
        folder,
        model_cache=model_cache,
        probe_per_class=probe_per_class,
        max_images=max_images or None,
        progress=not quiet,
    )
    for line in summary_lines(read_analysis(folder)):
        typer.echo(line)
    typer.echo(f"wrote {path}")


@app.command(short_help="Write FOLDER/report.md and report.html from results.jsonl.")
def report(
    folder: Annotated[Path, typer.Argument(help="An experiment folder holding results.jsonl.")],
    join: Annotated[
        list[Path] | None,
        typer.Option(
            "--join",
            metavar="FOLDER",
            help="Another experiment folder to report with FOLDER (repeatable): one joined report, in --out.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the report here instead (needed with --join; a folder of its own, not an experiment folder).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write FOLDER/report.md and FOLDER/report.html from FOLDER/results.jsonl; with --join (the parts of a study
    run as separate specs), one report of them all in --out, each run once."""
    markdown = api.report(folder, *(join or []), out=out)
    figures = sorted((markdown.parent / "figures").glob("*.png"))
    standalone = markdown.parent / "report-standalone.html"
    typer.echo(
        f"wrote {markdown}, {markdown.with_suffix('.html')} and {len(figures)} figures in "
        f"{markdown.parent / 'figures'}; to share one file: {standalone}"
    )


def main() -> None:
    """The console script: every error one `synthgap: error: ...` line on stderr and exit code 2 — bad input
    (`SynthgapError`), a file-system error, or a command line typer cannot parse."""
    from typer._click import exceptions as click_errors

    try:
        code = app(prog_name="synthgap", standalone_mode=False)
    except SynthgapError as exc:
        _fail(str(exc))
    except OSError as exc:  # permission, read-only, disk full, a file where a folder belongs: the user's to fix
        from synthgap.errors import os_error_message

        _fail(os_error_message(exc))
    except click_errors.NoArgsIsHelpError as exc:  # `synthgap` or `synthgap data` alone: the help
        exc.show()
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        _fail(usage_error_message(exc))
    except typer.Abort:
        typer.echo("synthgap: aborted", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:  # typer.Exit(code), e.g. 130 after Ctrl-C
        sys.exit(code)


def _fail(message: str) -> None:
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())  # one line, whatever it holds
    typer.echo(f"synthgap: error: {line}", err=True)
    sys.exit(2)


def usage_error_message(exc: Exception) -> str:
    """A command line typer could not parse, in one line: `no such option: --dryrun (did you mean --dry-run?);
    see 'synthgap run --help'`, `--epochs: 'x' is not a valid integer`, `missing option --clip-model`."""
    import re

    from pydantic import ValidationError
    from typer._click import exceptions as click_errors

    from synthgap.errors import error_message

    ctx = getattr(exc, "ctx", None)
    param = getattr(exc, "param", None)
    text = exc.format_message()
    if isinstance(exc, click_errors.NoSuchOption):
        close = sorted(exc.possibilities or [])
        text = f"no such option: {exc.option_name}" + (f" (did you mean {close[0]}?)" if close else "")
    elif isinstance(exc, click_errors.BadParameter) and not isinstance(exc, click_errors.MissingParameter):
        name = "/".join(param.opts) if param is not None and param.param_type_name == "option" else None
        cause = exc.__cause__
        reason = error_message(cause.errors()[0]) if isinstance(cause, ValidationError) and cause.errors() else None
        if name:
            text = f"{name}: {reason or exc.message}"
        elif reason:
            text = f"{text.partition(':')[0]}: {reason}"
    elif (command := re.match(r"No such command '([^']*)'", text)) and ctx is not None:
        names = ctx.command.list_commands(ctx) if hasattr(ctx.command, "list_commands") else []
        text = f"no such command {command.group(1)!r}{did_you_mean(command.group(1), names)}"
    text = text[:1].lower() + text[1:]
    text = text.rstrip(".")
    if ctx is not None:
        text += f"; see '{ctx.command_path} --help'"
    return text


if __name__ == "__main__":
    main()
