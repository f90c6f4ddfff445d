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
from collections.abc import Iterator, Sequence
from pathlib import Path

from synthgap.analysis.rows import AnalysisRow, read_analysis
from synthgap.errors import SynthgapError
from synthgap.experiments.examples import EXAMPLES_FILE
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
JOINED_FILE = "joined.txt"  # a joined report's folders, one absolute path a line
STANDALONE_FILE = "report-standalone.html"  # report.html with its figures inside, to send as one file


def build_report(folder: Path) -> Path:
    """Write `folder`/report.md, report.html, report-standalone.html and figures/*.png from `folder`/results.jsonl
    (and the example images in `folder`/examples.safetensors when there are any); returns report.md.

    The figures are drawn into a staging folder that replaces figures/ only once every one of them is drawn, so a
    failure (a full disk) leaves the previous figures/ as it was; the reports are written after that."""
    folder = Path(folder)
    _check_results(folder)
    return _write_report(folder, read_results(folder), read_analysis(folder), folder)


def build_joined_report(folders: Sequence[Path], out: Path) -> Path:
    """One report in `out` of the records of several experiment folders (e.g. the parts of a study run as separate
    specs: a layer sweep in one, model stitching in another), so their sections sit side by side and compare the same
    students; returns `out`/report.md. `out` is a folder of its own: never one of `folders`, never an experiment
    folder (it gets the report files only, and a `joined.txt` naming the folders).

    A run name in several folders is taken once when its settings fingerprint is the same in each (the same student,
    trained once per folder); with other settings it is an error naming the run and both folders, since a joined
    report would mix two students under one name (a transfer run would be compared with the other folder's R)."""
    folders = [Path(folder) for folder in folders]
    out = Path(out)
    for number, folder in enumerate(folders):
        _check_results(folder)
        if folder.resolve() in (f.resolve() for f in folders[:number]):
            raise SynthgapError(f"{folder} is given twice: join each folder once")
        if folder.resolve() in (out.resolve(), *out.resolve().parents):  # its next report would replace this one
            raise SynthgapError(f"--out {out} is, or lies in, the joined folder {folder}: write the report apart")
    if (out / RESULTS_FILE).exists():
        raise SynthgapError(f"--out {out} is an experiment folder ({RESULTS_FILE}): write the joined report apart")
    records, counts = joined_records(folders)
    rows = list({row.model_dump_json(): row for folder in folders for row in read_analysis(folder)}.values())
    examples_from = next((folder for folder in folders if (folder / EXAMPLES_FILE).is_file()), out)
    out.mkdir(parents=True, exist_ok=True)
    sources = ["Joined from:", ""]
    for folder, (taken, repeated) in zip(folders, counts, strict=True):
        also = f"; {repeated} more already in an earlier folder with the same settings, taken once" if repeated else ""
        sources.append(f"- `{md_text(str(folder))}`: {taken} runs{also}")
    report = _write_report(out, records, rows, examples_from, [*sources, ""])
    atomic_write_text(out / JOINED_FILE, "".join(f"{folder.resolve()}\n" for folder in folders))
    return report


def joined_records(folders: Sequence[Path]) -> tuple[list[ResultRecord], list[tuple[int, int]]]:
    """The records of `folders` in order, a run name once (see `build_joined_report`), and per folder (runs taken,
    runs already taken from an earlier folder)."""
    taken: dict[str, tuple[ResultRecord, Path]] = {}
    counts = []
    for folder in folders:
        repeated = 0
        for record in read_results(folder):
            earlier = taken.get(record.run)
            if earlier is None:
                taken[record.run] = (record, folder)
            elif record.fingerprint is not None and record.fingerprint == earlier[0].fingerprint:
                repeated += 1
            elif record.fingerprint is None or earlier[0].fingerprint is None:
                raise SynthgapError(
                    f"{record.run} is in {earlier[1]} and in {folder}, recorded without a settings fingerprint (an "
                    "older synthgap) in one of them: whether it is one student cannot be told; report them apart"
                )
            else:
                raise SynthgapError(
                    f"{record.run} is in {earlier[1]} and in {folder} with other settings (fingerprints "
                    f"{earlier[0].fingerprint} and {record.fingerprint}): two students under one name cannot share "
                    "a report; report those folders apart"
                )
        counts.append((sum(1 for _, where in taken.values() if where == folder), repeated))
    return [record for record, _ in taken.values()], counts


def _check_results(folder: Path) -> None:
    if not (folder / RESULTS_FILE).exists():
        raise SynthgapError(f"no {RESULTS_FILE} in {folder}: run an experiment with --out {folder} first")


def _write_report(
    out: Path,
    records: list[ResultRecord],
    analysis: list[AnalysisRow],
    examples_from: Path,
    preface: list[str] | None = None,
) -> Path:
    with staged_folder(out / FIGURES_DIR) as figures:
        markdown = report_markdown(out, records, figures, analysis, examples_from, preface)
    title = f"synthgap report: {out.name}"
    atomic_write_text(out / "report.md", markdown)
    atomic_write_text(out / "report.html", markdown_to_html(markdown, title=title))
    atomic_write_text(out / STANDALONE_FILE, markdown_to_html(markdown, title=title, embed_from=out))
    return out / "report.md"


def report_markdown(
    folder: Path,
    records: list[ResultRecord],
    figures: Path,
    analysis: list[AnalysisRow] | None = None,
    examples_from: Path | None = None,
    preface: list[str] | None = None,
) -> str:
    """The report's Markdown; draws every figure into `figures` (the Markdown names them as figures/<name>).
    `analysis`: the analysis rows (default `folder`'s); `examples_from`: the folder of the example images (default
    `folder`); `preface`: lines after the run count (a joined report's sources)."""
    families = by_model(records)
    lines = [f"# synthgap report: {md_text(folder.name)}", "", f"{len(records)} finished runs.", "", *(preface or [])]
    lines += warning_lines(records)
    if len(families) > 1:
        for model, family in families.items():
            lines += family_lines(family, Scope(folder, model, figures))
    else:
        lines += family_lines(records, Scope(folder, figures=figures))
    lines += examples_lines(examples_from or folder, records, figures)
    rows = read_analysis(folder) if analysis is None else analysis
    lines += analysis_lines(records, rows, folder, figures=figures)
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
