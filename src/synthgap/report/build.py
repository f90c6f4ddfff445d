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
by markdown-it-py (CommonMark + tables), each figure a link to its file and never wider than the page; a table of
three or more columns becomes a list of cards, one per row, on a page too narrow for it (a phone), and every table is
in a box that scrolls sideways should it still not fit; report-standalone.html is the same page with the figures
inside it (base64 data URIs), to share. tests/report/test_browser_layout.py checks this in headless Chromium.
"""

from __future__ import annotations

import base64
import contextlib
import html
import math
import re
import secrets
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token
from safetensors import SafetensorError

from synthgap.analysis.rows import read_analysis
from synthgap.errors import SynthgapError
from synthgap.experiments.examples import EXAMPLES_FILE, read_examples
from synthgap.experiments.results import RESULTS_FILE, ResultRecord, read_results
from synthgap.io import atomic_write_text, current_umask
from synthgap.report import remedies  # noqa: F401  (registers its section)
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


STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; max-width: 72rem; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.7rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.35rem; margin-top: 2.2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
h3 { font-size: 1.1rem; margin-top: 1.6rem; }
p, li { max-width: 60rem; }
code { font-size: .9em; background: #f6f8fa; padding: .1em .3em; border-radius: 4px; }
img { max-width: 100%; height: auto; display: block; margin: .8rem 0; }
a.figure { display: block; width: fit-content; max-width: 100%; }
.table-scroll { overflow-x: auto; max-width: 100%; width: fit-content; margin: .8rem 0;
                border: 1px solid #d0d7de; border-radius: 6px; }
table { border-collapse: collapse; font-size: .9rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e5e8eb; padding: .3rem .65rem; text-align: left; white-space: nowrap; }
td:not(.num):not(.none), th:not(.num) { white-space: normal; overflow-wrap: anywhere; min-width: 4rem; }
th { background: #f6f8fa; vertical-align: bottom; }
th.num, td.num { text-align: right; }
th.num { white-space: normal; }  /* a header of numbers wraps between its words */
td.none { text-align: center; color: #656d76; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef4ff; }
@media (max-width: 40rem) { body { margin: 1rem auto; padding: 0 .75rem; } }
"""

# A table of STACK_COLUMNS columns or more becomes a list of cards, one per row, on a page too narrow for it as a
# table (`stacking_width`, from its columns): each card has one line per cell, the column's name (a ::before label)
# and the value; the header row stays for screen readers only. `{t}` is the table's box, `#table-<k>`.
STACK_COLUMNS = 3
STACK_STYLE = """
@media (max-width: {width}rem) {{
  {t} {{ width: auto; border: 0; border-radius: 0; overflow: visible; }}
  {t} table, {t} tbody, {t} tr {{ display: block; }}
  {t} thead {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }}
  {t} tr {{ border: 1px solid #d0d7de; border-radius: 6px; margin: .6rem 0; padding: .3rem 0; }}
  {t} td {{ display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 3fr); column-gap: .75rem; border: 0;
      padding: .15rem .75rem; text-align: left; white-space: normal; overflow-wrap: anywhere; min-width: 0; }}
  {t} td:first-child {{ font-weight: 600; }}
  {t} td::before {{ color: #656d76; font-weight: normal; }}
{labels}
}}
"""
# The narrowest a table can be (STYLE): a text cell 4rem (its words break anywhere when they must), a number cell
# its longest number (never wrapped; about .6rem a character in .9rem type), a number column's header its longest
# word; each cell 1.3rem of padding; the page around it 4.5rem (body padding, a scroll bar, the box's border).
TEXT_CELL_REM, NUMBER_CHAR_REM, CELL_PADDING_REM, PAGE_REM = 4.0, 0.6, 1.3, 4.5
# In the cells of a table that stacks, a name may break after these (cifake:|synthetic, data_|reduction, a/|path)
# rather than anywhere when its column is narrow; `overflow-wrap: anywhere` stays the last resort.
BREAK_AFTER = re.compile(r"(?<=[:/_+])(?=[^\s<])")


@dataclass(frozen=True)
class TableShape:
    """What `_classify_cells` learns of a table: its column names (the headers' inline tokens) and, for each
    column, whether it holds numbers only and its longest number and header word, in characters."""

    headers: list[Token]
    numeric: list[bool]
    longest: list[int]

    def stacking_width(self) -> int:
        """The page width (rem) below which this table does not fit as a table and becomes cards."""
        cells = [
            (NUMBER_CHAR_REM * chars if numeric else TEXT_CELL_REM) + CELL_PADDING_REM
            for numeric, chars in zip(self.numeric, self.longest, strict=True)
        ]
        return math.ceil(sum(cells) + PAGE_REM)


def _markdown(embed_from: Path | None = None) -> MarkdownIt:
    """CommonMark with pipe tables; raw HTML off (run and class names come from users' folders and are shown as
    text; the sections also print every such name through `text.md_text`); every table wrapped in a box that
    scrolls sideways when it is wider than the page, numbers right-aligned (and the headers of all-number columns
    with them), text left-aligned (and wrapping, so that a wide table fits); a table of STACK_COLUMNS columns or
    more gets an id and becomes cards on a page narrower than its `stacking_width` (the rules `stacking_rules`
    writes), its names breaking after `BREAK_AFTER`'s characters first.

    Each figure is a link to its file, which opens it full size; with `embed_from` (the report folder) each figure
    file found there is put inside the page instead, as a base64 data URI (no link: a browser does not open a
    data URI from a link)."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def image(self, tokens, idx, options, env) -> str:
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        if embed_from is None:
            return f'<a class="figure" href="{html.escape(src)}">{self.image(tokens, idx, options, env)}</a>'
        path = embed_from / src
        if src and not re.match(r"^[a-z]+:", src) and path.is_file():
            token.attrSet("src", "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii"))
        return self.image(tokens, idx, options, env)

    def table_open(self, tokens, idx, options, env) -> str:
        shape = _classify_cells(tokens, idx)
        table = self.renderToken(tokens, idx, options, env)
        if len(shape.headers) < STACK_COLUMNS:
            return '<div class="table-scroll">\n' + table
        stacked = env.setdefault("stacked", [])
        labels = [self.renderInlineAsText(inline.children, options, env) for inline in shape.headers]
        stacked.append((shape.stacking_width(), labels))
        env["in_stack"] = True
        return f'<div class="table-scroll stack" id="table-{len(stacked)}">\n' + table

    def table_close(self, tokens, idx, options, env) -> str:
        env["in_stack"] = False
        return self.renderToken(tokens, idx, options, env) + "</div>\n"

    def text(self, tokens, idx, options, env) -> str:
        escaped = self.text(tokens, idx, options, env)
        return BREAK_AFTER.sub("<wbr>", escaped) if env.get("in_stack") else escaped

    md.add_render_rule("image", image)
    md.add_render_rule("table_open", table_open)
    md.add_render_rule("table_close", table_close)
    md.add_render_rule("text", text)
    return md


def _classify_cells(tokens: list[Token], start: int) -> TableShape:
    """Give the cells of the table opening at `tokens[start]` their `cell_kind` class, and each header the "num"
    class when every value in its column is a number (or empty); returns the table's shape."""
    headers: dict[int, Token] = {}
    header_text: list[Token] = []
    kinds: dict[int, set[str]] = defaultdict(set)
    longest: dict[int, int] = defaultdict(int)
    column = 0
    for i in range(start + 1, len(tokens)):
        token = tokens[i]
        if token.type == "table_close":
            break
        if token.type == "tr_open":
            column = 0
        elif token.type in ("th_open", "td_open"):
            text = tokens[i + 1].content if tokens[i + 1].type == "inline" else ""
            if token.type == "th_open":
                headers[column] = token
                header_text.append(tokens[i + 1] if tokens[i + 1].type == "inline" else Token("inline", "", 0))
                longest[column] = max([longest[column], *map(len, text.split())])
            else:
                kind = cell_kind(text)
                kinds[column].add(kind)
                if kind:
                    token.attrJoin("class", kind)
                longest[column] = max(longest[column], len(text.strip()))
            column += 1
    numeric = []
    for column, header in headers.items():
        numeric.append("num" in kinds[column] and kinds[column] <= {"num", "none"})
        if numeric[-1]:
            header.attrJoin("class", "num")
    return TableShape(header_text, numeric, [longest[c] for c in headers])


def stacking_rules(stacked: list[tuple[int, list[str]]]) -> str:
    """The CSS that turns each table of `stacked` (`#table-<k>`, numbered from 1 in page order: its stacking width
    in rem and its column names) into cards below its width, each cell labelled with its column's name. Every
    character of a name but ASCII letters, digits and spaces is a CSS escape, so no name a user gave a column can end
    the string or the style element."""

    def css_string(text: str) -> str:
        return '"' + "".join(c if c.isascii() and (c.isalnum() or c == " ") else f"\\{ord(c):x} " for c in text) + '"'

    rules = []
    for k, (width, labels) in enumerate(stacked, start=1):
        t = f"#table-{k}"
        named = [
            f"  {t} td:nth-child({i})::before {{ content: {css_string(label)}; }}" for i, label in enumerate(labels, 1)
        ]
        rules.append(STACK_STYLE.format(width=width, t=t, labels="\n".join(named)))
    return "".join(rules)


def cell_kind(text: str) -> str:
    """ "num" for a cell that holds numbers ("80.00 ± 1.41 (n=3)", "-3.32 [-3.32, -3.32]", "1/8", "+5.30"), right
    aligned; "none" for an empty value ("–"), centred; "" for text (names, True/False), left aligned."""
    text = text.strip()
    if text in ("–", "-", ""):
        return "none"
    bare = re.sub(r"\((n=\d+|\d+ seeds?)\)", "", text)
    return "num" if re.search(r"\d", bare) and not re.search(r"[A-Za-z]", bare) else ""


def markdown_to_html(markdown: str, *, title: str, embed_from: Path | None = None) -> str:
    """A UTF-8 HTML page of the report's Markdown, rendered by markdown-it-py; with `embed_from` (the report folder)
    its figures are inside the page, so the one file can be sent on its own."""
    env: dict = {}
    body = _markdown(embed_from).render(markdown, env)
    style = STYLE + stacking_rules(env.get("stacked", []))
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
