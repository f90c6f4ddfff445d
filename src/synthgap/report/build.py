"""`synthgap report DIR`: results.jsonl → report.md and report.html (regenerable at any time).

Sides come from each record's `side` (see `tables`), layer counts from its `num_layers`. A folder whose records come
from several model families (e.g. a ResNet-18 and a ResNet-50 experiment written to one place) gets its sections once
per family, each family's records apart, headings and figure names tagged with the family: layer numbers N, baselines
R and S and the paper comparisons only make sense within one network. A folder of one family reads as it always did.
Records without a `side` (written by old versions) are listed under "All runs" but are never R or S.

Sections, in order: a "Warnings" list (`sanity.sanity_flags`, only when something looks wrong), then per family the
baselines (with balanced top-1 where records carry it), per-class results (gap per class, confusion matrices; only
for records with per-class fields), layer-wise transfer, data reduction and ablations; then example training images
(from `examples.safetensors`, written by the runner, when present) and every run. report.html is report.md rendered
by `render.markdown_to_html` (each figure a link to its file; wide tables scroll, or become cards on a phone);
report-standalone.html is the same page with the figures inside it (base64 data URIs), to share.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from synthgap.analysis.rows import read_analysis
from synthgap.errors import SynthgapError
from synthgap.experiments.results import RESULTS_FILE, ResultRecord, read_results
from synthgap.io import atomic_write_text, current_umask

# each topic module registers its sections (`sections.section`); importing them here is what puts them in a report
from synthgap.report import (  # noqa: F401
    ablations,
    baselines,
    exchange_rate,
    layers,
    reduction,
    remedies,
    stitching,
)
from synthgap.report.analysis import analysis_lines
from synthgap.report.examples import examples_lines
from synthgap.report.render import markdown_to_html
from synthgap.report.sanity import sanity_flags
from synthgap.report.sections import Scope, ordered_sections
from synthgap.report.tables import by_model, model_name
from synthgap.report.text import md_text


def all_runs_lines(records: list[ResultRecord], *, with_model: bool = False) -> list[str]:
    """Every record, one row each, the accuracies right after the run's name (a wide table scrolls, and what a reader
    looks for must not be behind the scroll); the model column only when the folder holds several families, the
    balanced top-1 column only when some record carries it."""
    balanced = any(r.balanced_top1 is not None for r in records)
    heads = ["run", "top-1", *(["balanced top-1"] if balanced else []), "top-5", "kind"]
    heads += [*(["model"] if with_model else []), "source", "target", "N", "frozen", "seed", "epochs", "images"]
    heads.append("seconds")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in records:
        cells = [md_text(r.run), f"{r.top1:.2f}"]
        if balanced:
            cells.append("–" if r.balanced_top1 is None else f"{r.balanced_top1:.2f}")
        cells += [f"{r.top5:.2f}", md_text(r.kind), *([md_text(model_name(r))] if with_model else [])]
        cells += [md_text(r.source or "–"), md_text(r.target), str(r.n_transferred), str(r.frozen), str(r.seed)]
        cells += [str(r.epochs), str(r.train_images), f"{r.seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def family_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """Every registered section, in order, computed from one model family's records."""
    return [line for registered in ordered_sections() for line in registered.lines(records, scope)]


def warning_lines(records: list[ResultRecord]) -> list[str]:
    """The "Warnings" section: one bullet per `sanity_flags` line; empty when nothing looks wrong."""
    flags = sanity_flags(records)
    if not flags:
        return []
    # a flag is plain text (also printed by `synthgap run`) that quotes run and model names
    return ["## Warnings", "", *(f"- {md_text(flag)}" for flag in flags), ""]


FIGURES_DIR = "figures"
STANDALONE_FILE = "report-standalone.html"  # report.html with its figures inside, to send as one file


def build_report(folder: Path) -> Path:
    """Write `folder`/report.md, report.html, report-standalone.html and figures/*.png from `folder`/results.jsonl
    (and the example images in `folder`/examples.safetensors when there are any); returns report.md.

    The figures are drawn into a staging folder that replaces figures/ only once every one of them is drawn, so a
    failure (a full disk) leaves the previous figures/ as it was; the reports are written after that."""
    folder = Path(folder)
    if not (folder / RESULTS_FILE).exists():
        raise SynthgapError(f"no {RESULTS_FILE} in {folder}: run an experiment with --out {folder} first")
    records = read_results(folder)
    with staged_folder(folder / FIGURES_DIR) as figures:
        markdown = report_markdown(folder, records, figures)
    title = f"synthgap report: {folder.name}"
    atomic_write_text(folder / "report.md", markdown)
    atomic_write_text(folder / "report.html", markdown_to_html(markdown, title=title))
    atomic_write_text(folder / STANDALONE_FILE, markdown_to_html(markdown, title=title, embed_from=folder))
    return folder / "report.md"


def report_markdown(folder: Path, records: list[ResultRecord], figures: Path) -> str:
    """The report's Markdown; draws every figure into `figures` (the Markdown names them as figures/<name>)."""
    families = by_model(records)
    lines = [f"# synthgap report: {md_text(folder.name)}", "", f"{len(records)} finished runs.", ""]
    lines += warning_lines(records)
    if len(families) > 1:
        for model, family in families.items():
            lines += family_lines(family, Scope(folder, model, figures))
    else:
        lines += family_lines(records, Scope(folder, figures=figures))
    lines += examples_lines(folder, records, figures)
    lines += analysis_lines(records, read_analysis(folder), folder, figures=figures)
    lines += ["## All runs", "", *all_runs_lines(records, with_model=len(families) > 1), ""]
    return "\n".join(lines)


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A new empty folder beside `target` (`.<name>.<random>.tmp`) to fill; when the block ends normally it
    replaces `target`, otherwise it is removed and `target` stays as it was. An `OSError` that names no file (a
    full disk while a figure is saved) is raised again naming `target`."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        staging.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 would become the permissions of figures/
        yield staging
        if any(staging.iterdir()) or target.exists():  # a report without figures makes no empty figures/
            _replace_folder(staging, target)
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once it has become `target`


def _replace_folder(new: Path, target: Path) -> None:
    """Put the folder `new` in the place of `target` (two renames, the old folder removed after; it comes back if
    the second rename fails)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{secrets.token_hex(6)}.old")
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
