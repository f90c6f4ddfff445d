"""`synthgap report DIR`: results.jsonl → report.md and report.html (regenerable at any time).

Sides come from each record's `side` (see `tables`), layer counts from its `num_layers`. A folder whose records come
from several model families (e.g. a ResNet-18 and a ResNet-50 experiment written to one place) gets its sections once
per family, each family's records apart, headings and figure names tagged with the family: layer numbers N, baselines
R and S and the paper comparisons only make sense within one network. A folder of one family reads as it always did.
Records without a `side` (written by old versions) are listed under "All runs" but are never R or S.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from synthgap.errors import SynthgapError
from synthgap.experiments.results import RESULTS_FILE, ResultRecord, read_results
from synthgap.io import atomic_write_text
from synthgap.report.ablations import (
    ablation_reading,
    augmentation_table,
    generator_table,
    mixing_table,
    normalization_label,
    normalization_table,
    texture_table,
)
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
from synthgap.report.tables import Summary, by_model, file_tag, gap_lines, model_name, num_layers


@dataclass(frozen=True)
class Scope:
    """Where one family's sections go: the report folder, and the family when the folder holds several (it then tags
    every heading and figure name)."""

    folder: Path
    model: str | None = None

    def heading(self, title: str) -> str:
        return f"## {title} ({self.model})" if self.model else f"## {title}"

    def figure(self, name: str) -> str:
        """The figure's path relative to the report, e.g. "figures/layer_sweep.png"."""
        return f"figures/{name}-{file_tag(self.model)}.png" if self.model else f"figures/{name}.png"

    def figure_path(self, name: str) -> Path:
        return self.folder / self.figure(name)


def all_runs_lines(records: list[ResultRecord], *, with_model: bool = False) -> list[str]:
    """Every record, one row each (the model column only when the folder holds several families)."""
    model_head, model_rule = ("model | ", "---|") if with_model else ("", "")
    lines = [
        f"| run | kind | {model_head}source | target | N | frozen | seed | epochs | images | top-1 | top-5 | seconds |",
        f"|---|---|{model_rule}---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        model = f"{model_name(r)} | " if with_model else ""
        lines.append(
            f"| {r.run} | {r.kind} | {model}{r.source or '–'} | {r.target} | {r.n_transferred} | {r.frozen} | "
            f"{r.seed} | {r.epochs} | {r.train_images} | {r.top1:.2f} | {r.top5:.2f} | {r.seconds:.0f} |"
        )
    return lines


def baseline_lines(records: list[ResultRecord], scope: Scope) -> list[str]:
    gap = gap_lines(records)
    return [scope.heading("Baselines: real (R) vs synthetic (S) training data"), "", *gap, ""] if gap else []


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
        cues = ("clean", "grayscale_blur", "edges", "patch_shuffle")
        bars = {k: {c: v[c] for c in cues if c in v} for k, v in students.items()}
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
    """Every section computed from one model family's records."""
    return [
        *baseline_lines(records, scope),
        *layer_transfer_lines(records, scope),
        *data_reduction_lines(records, scope),
        *ablation_lines(records, scope),
    ]


def build_report(folder: Path) -> Path:
    """Write `folder`/report.md, report.html and figures/*.png from `folder`/results.jsonl; returns report.md."""
    folder = Path(folder)
    if not (folder / RESULTS_FILE).exists():
        raise SynthgapError(f"no {RESULTS_FILE} in {folder}: run an experiment with --out {folder} first")
    records = read_results(folder)
    families = by_model(records)
    lines = [f"# synthgap report: {folder.name}", "", f"{len(records)} finished runs.", ""]
    if len(families) > 1:
        for model, family in families.items():
            lines += family_lines(family, Scope(folder, model))
    else:
        lines += family_lines(records, Scope(folder))
    lines += ["## All runs", "", *all_runs_lines(records, with_model=len(families) > 1), ""]
    markdown = "\n".join(lines)
    atomic_write_text(folder / "report.md", markdown)
    atomic_write_text(folder / "report.html", markdown_to_html(markdown, title=f"synthgap report: {folder.name}"))
    return folder / "report.md"


def markdown_to_html(markdown: str, *, title: str) -> str:
    """Enough Markdown for our reports: headings, paragraphs, bold, pipe tables, images."""
    body: list[str] = []
    table: list[list[str]] = []

    def flush_table() -> None:
        if table:
            head, *rows = table
            body.append("<table><thead><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr></thead><tbody>")
            body.extend("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
            body.append("</tbody></table>")
            table.clear()

    for raw in markdown.splitlines():
        line = _inline(html.escape(raw.strip()))
        if raw.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                table.append(cells)
            continue
        flush_table()
        if raw.startswith("#"):
            level = len(raw) - len(raw.lstrip("#"))
            body.append(f"<h{level}>{line.lstrip('#').strip()}</h{level}>")
        elif line:
            body.append(f"<p>{line}</p>")
    flush_table()
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _inline(text: str) -> str:
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r"<img alt='\1' src='\2'>", text)
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
