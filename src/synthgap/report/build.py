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

from safetensors import SafetensorError

from synthgap.analysis.rows import read_analysis
from synthgap.errors import SynthgapError
from synthgap.experiments.examples import EXAMPLES_FILE, read_examples
from synthgap.experiments.results import RESULTS_FILE, ResultRecord, read_results
from synthgap.io import atomic_write_text, current_umask
from synthgap.report import exchange_rate, remedies, stitching  # noqa: F401  (each registers its section)
from synthgap.report.ablations import (
    CUE_LABELS,
    ablation_reading,
    augmentation_table,
    generator_table,
    mixing_table,
    normalization_label,
    normalization_table,
    texture_table,
)
from synthgap.report.analysis import analysis_lines
from synthgap.report.class_figures import plot_confusions, plot_examples, plot_per_class
from synthgap.report.classes import (
    TABLE_ENDS,
    PerClassGaps,
    first_seed_confusions,
    per_class_gaps,
    per_class_reading,
    per_class_table_lines,
)
from synthgap.report.convergence import convergence_note
from synthgap.report.figures import (
    plot_grouped_bars,
    plot_layer_sweep,
    plot_mixing,
    plot_reduction_arms,
    plot_reduction_fit,
)
from synthgap.report.layers import gap_reading, layer_baselines, layer_sweep, layer_table_lines, transfer_records
from synthgap.report.reduction import (
    reduction_fits,
    reduction_points,
    reduction_reading,
    reduction_settings,
    reduction_table_lines,
)
from synthgap.report.render import markdown_to_html
from synthgap.report.sanity import sanity_flags
from synthgap.report.sections import Scope, ordered_sections, section
from synthgap.report.tables import Summary, by_model, gap_lines, model_name, num_layers
from synthgap.report.text import md_text

EXAMPLE_ROWS = 12  # the example figure shows at most this many classes


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


@section("baselines", kinds=("baseline",), order=10)
def baseline_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    gap = gap_lines(records)
    if not gap:
        return []
    note = convergence_note(records)
    return [scope.heading("Baselines: real (R) vs synthetic (S) training data"), "", *([note, ""] if note else []),
            *gap, ""]  # fmt: skip


@section("per_class", kinds=("baseline",), order=20)
def per_class_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The per-class section: the gap R − S per class (table and figure) and the confusion matrices of R and S;
    draws the per_class and confusion figures. Empty when no baseline carries per-class results."""
    gaps = per_class_gaps(records)
    confusions = first_seed_confusions(records)
    if gaps is None and confusions is None:
        return []
    lines = [scope.heading("Per-class results"), ""]
    if gaps is not None:
        plot_per_class(gaps, scope.figure_path("per_class"))
        lines += [
            per_class_reading(gaps),
            "",
            f"![Per-class top-1 of R and S and the gap R − S]({scope.figure('per_class')})",
            "",
        ]
        if len(gaps.classes) > 2 * TABLE_ENDS:
            lines += [f"The {TABLE_ENDS} largest and {TABLE_ENDS} smallest gaps (the figure shows every class):", ""]
        lines += [*per_class_table_lines(gaps), ""]
    if confusions is not None:
        plot_confusions(confusions, scope.figure_path("confusion"))
        sides = " and ".join(k for k in ("R", "S") if k in confusions.matrices)
        lines += [
            f"Confusion matrices of {sides} on the real test set, from the baselines of seed {confusions.seed}: "
            "row = true class, column = predicted class, each row divided by the class's test images (so an "
            "imbalanced test set does not darken its large classes).",
            "",
            f"![Confusion matrices of R and S (seed {confusions.seed})]({scope.figure('confusion')})",
            "",
        ]
    return lines


@section("layer_transfer", kinds=("layer_transfer",), order=30)
def layer_transfer_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The layer-wise transfer section; draws the layer_sweep figure as a side effect. Empty without a sweep."""
    sweep = layer_sweep(records)
    if not sweep:
        return []
    baselines = layer_baselines(records)
    layers = num_layers(transfer_records(records))
    plot_layer_sweep(sweep, baselines, scope.figure_path("layer_sweep"), num_layers=layers)
    return [
        scope.heading("Layer-wise transfer"),
        "",
        f"![Layer-wise transfer (Figure 2)]({scope.figure('layer_sweep')})",
        "",
        *layer_table_lines(sweep, baselines, num_layers=layers),
        "",
        gap_reading(sweep, baselines, num_layers=layers),
        "",
    ]


@section("data_reduction", kinds=("data_reduction",), order=40)
def data_reduction_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The data-reduction section; draws the reduction_{fit,arms} figures as a side effect. Empty without runs."""
    points = reduction_points(records)
    if not points:
        return []
    fits = reduction_fits(records)
    settings = reduction_settings(records)
    baselines = layer_baselines(records)
    main = next((k for k in points if k == "transfer" or k.startswith("transfer (")), next(iter(points)))
    main_fit = fits[main].fit if main in fits else None
    plot_reduction_fit(points[main], main_fit, scope.figure_path("reduction_fit"), label=main)
    arm_fits = {k: f.fit for k, f in fits.items()}
    plot_reduction_arms(points, arm_fits, scope.figure_path("reduction_arms"), reference=baselines.get("R"))
    return [
        scope.heading("Data reduction"),
        "",
        f"![Data reduction (Figure 3)]({scope.figure('reduction_fit')})",
        "",
        f"![Transfer vs scratch (Figure 4)]({scope.figure('reduction_arms')})",
        "",
        *reduction_table_lines(points, fits, settings=settings),
        "",
        reduction_reading(points, fits, baselines, settings=settings),
        "",
    ]


def _figure_section(title: str, scope: Scope, name: str, table: list[str], *, alt: str | None = None) -> list[str]:
    """An ablation subsection: heading, its figure, its table."""
    return [f"### {title}", "", f"![{alt or title}]({scope.figure(name)})", "", *table, ""]


ABLATIONS = ("normalization", "augmentation", "texture_shape", "generator", "mixing")


@section("ablations", kinds=tuple(f"ablation:{name}" for name in ABLATIONS), order=50)
def ablation_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    """The ablation sections (each only when its runs exist) and their reading; draws the ablation_* figures."""
    baselines = layer_baselines(records)
    references = {k: v for k, v in baselines.items() if k in ("R", "S")}
    sections: list[str] = []
    table, rows = normalization_table(records, baselines)
    if table:
        several = len({student for student, _, _ in rows}) > 1
        bars: dict[str, dict[str, Summary]] = {}
        for (student, normalization, adabn), summary in rows.items():
            group = normalization_label(normalization, False) + (f" ({student})" if several else "")
            bars.setdefault(group, {})["with AdaBN on real images" if adabn else "as trained"] = summary
        title = "Normalization statistics of the students"
        plot_grouped_bars(bars, scope.figure_path("ablation_normalization"), title=title, references=references)
        sections += _figure_section("Normalization", scope, "ablation_normalization", table)
    table, presets = augmentation_table(records)
    if table:
        bars = {p: {f"trained on {k}": v for k, v in by_side.items()} for p, by_side in presets.items()}
        plot_grouped_bars(bars, scope.figure_path("ablation_augmentation"), title="Augmentation presets")
        sections += _figure_section("Augmentation", scope, "ablation_augmentation", table)
    table, students = texture_table(records)
    if table:
        cues = {"clean": "clean", **CUE_LABELS}  # the legend names each test variant as the table does
        bars = {k: {label: v[c] for c, label in cues.items() if c in v} for k, v in students.items()}
        title = "Texture vs shape: accuracy per test variant"
        plot_grouped_bars(bars, scope.figure_path("ablation_texture"), title=title)
        sections += _figure_section("Texture vs shape", scope, "ablation_texture", table)
    table, _ = generator_table(records, baselines)
    if table:
        sections += ["### Synthetic source (generator choice)", "", *table, ""]
    sections += _mixing_section(records, baselines, references, scope)
    if not sections:
        return []
    return [scope.heading("Ablations"), "", ablation_reading(records), "", *sections]


def _mixing_section(
    records: list[ResultRecord], baselines: dict[str, Summary], references: dict[str, Summary], scope: Scope
) -> list[str]:
    table, mixing = mixing_table(records, baselines)
    if not table:
        return []
    shares = {
        arm.synthetic_share: m for arm, m in mixing.items() if arm.mixing == "share" and arm.synthetic_share is not None
    }
    if not (shares and references):
        return ["### Mixing real and synthetic", "", *table, ""]
    if "R" in references:
        shares.setdefault(0.0, references["R"])  # R's training set is the 0 % mix of the same size
    if "S" in references:
        shares.setdefault(1.0, references["S"])
    plot_mixing(shares, scope.figure_path("ablation_mixing"), references=references)
    return _figure_section("Mixing real and synthetic", scope, "ablation_mixing", table, alt="Mixing")


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


def examples_lines(folder: Path, records: list[ResultRecord], figures: Path | None = None) -> list[str]:
    """The example-images section from `folder`/examples.safetensors (written by the experiment runner); draws
    examples.png into `figures` (default `folder`/figures). Empty without the file; one line saying why when it
    cannot be read."""
    path = folder / EXAMPLES_FILE
    if not path.is_file():
        return []
    heading = ["## Training images", ""]
    try:
        examples = read_examples(path)
    except (OSError, ValueError, SafetensorError) as exc:
        return [*heading, f"{EXAMPLES_FILE} could not be read ({str(exc).splitlines()[0]}), so no pictures here.", ""]
    if not examples.classes:
        return []
    gaps = per_class_gaps(next(iter(by_model(records).values()), []))
    rows, why = example_rows(examples.classes, gaps)
    plot_examples(examples, rows, (figures if figures is not None else folder / "figures") / "examples.png")
    k = examples.per_class
    return [
        *heading,
        f"The first {k} training images of each class, in index order: real on the left, synthetic on the right "
        f"({why}).",
        "",
        "![Training images: real | synthetic](figures/examples.png)",
        "",
    ]


def example_rows(classes: tuple[str, ...], gaps: PerClassGaps | None, limit: int = EXAMPLE_ROWS) -> tuple[list, str]:
    """Which classes the example figure shows (indices into `classes`), and a phrase saying which: all of them up
    to `limit`, else the `limit` with the largest gap R − S when the baselines have per-class results, else the
    first `limit`."""
    if len(classes) <= limit:
        return list(range(len(classes))), f"all {len(classes)} classes"
    if gaps is not None:
        index = {name: i for i, name in enumerate(classes)}
        largest = [index[c.name] for c in gaps.classes if c.name in index][:limit]
        if largest:
            return largest, f"the {len(largest)} of {len(classes)} classes with the largest gap R − S, largest first"
    return list(range(limit)), f"the first {limit} of {len(classes)} classes"


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
