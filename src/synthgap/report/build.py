"""`synthgap report DIR`: results.jsonl → report.md and report.html (regenerable at any time)."""

from __future__ import annotations

import html
from pathlib import Path

from synthgap.errors import SynthgapError
from synthgap.experiments.results import RESULTS_FILE, ResultRecord, read_results
from synthgap.io import atomic_write_text
from synthgap.report.ablations import (
    NORMALIZATION_LABELS,
    ablation_reading,
    augmentation_table,
    generator_table,
    mixing_table,
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
from synthgap.report.layers import gap_reading, layer_baselines, layer_sweep, layer_table_lines
from synthgap.report.reduction import reduction_fits, reduction_points, reduction_reading, reduction_table_lines
from synthgap.report.tables import Summary, gap_lines


def all_runs_lines(records: list[ResultRecord]) -> list[str]:
    lines = [
        "| run | kind | source | target | N | frozen | seed | epochs | images | top-1 | top-5 | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r.run} | {r.kind} | {r.source or '–'} | {r.target} | {r.n_transferred} | {r.frozen} | {r.seed} | "
            f"{r.epochs} | {r.train_images} | {r.top1:.2f} | {r.top5:.2f} | {r.seconds:.0f} |"
        )
    return lines


def layer_transfer_lines(records: list[ResultRecord], folder: Path) -> list[str]:
    """The layer-wise transfer section; draws `figures/layer_sweep.png` as a side effect. Empty without a sweep."""
    sweep = layer_sweep(records)
    if not sweep:
        return []
    baselines = layer_baselines(records)
    plot_layer_sweep(sweep, baselines, folder / "figures" / "layer_sweep.png")
    return [
        "## Layer-wise transfer",
        "",
        "![Layer-wise transfer (Figure 2)](figures/layer_sweep.png)",
        "",
        *layer_table_lines(sweep, baselines),
        "",
        gap_reading(sweep, baselines),
        "",
    ]


def data_reduction_lines(records: list[ResultRecord], folder: Path) -> list[str]:
    """The data-reduction section; draws `figures/reduction_{fit,arms}.png` as a side effect. Empty without runs."""
    points = reduction_points(records)
    if not points:
        return []
    fits = reduction_fits(records)
    baselines = layer_baselines(records)
    main = next((k for k in points if k == "transfer" or k.startswith("transfer (")), next(iter(points)))
    main_fit = fits[main].fit if main in fits else None
    plot_reduction_fit(points[main], main_fit, folder / "figures" / "reduction_fit.png", label=main)
    plot_reduction_arms(points, {k: f.fit for k, f in fits.items()}, folder / "figures" / "reduction_arms.png",
                        reference=baselines.get("R"))  # fmt: skip
    return [
        "## Data reduction",
        "",
        "![Data reduction (Figure 3)](figures/reduction_fit.png)",
        "",
        "![Transfer vs scratch (Figure 4)](figures/reduction_arms.png)",
        "",
        *reduction_table_lines(points, fits),
        "",
        reduction_reading(points, fits, baselines),
        "",
    ]


def ablation_lines(records: list[ResultRecord], folder: Path) -> list[str]:
    """The ablation sections (each only when its runs exist) and their reading; draws figures/ablation_*.png."""
    baselines = layer_baselines(records)
    references = {k: v for k, v in baselines.items() if k in ("R", "S")}
    figures = folder / "figures"
    sections: list[str] = []
    table, rows = normalization_table(records, baselines)
    if table:
        students = {student for student, _ in rows}
        bars: dict[str, dict[str, Summary]] = {}
        for (student, variant), summary in rows.items():
            choice, _, adabn = variant.partition("+")
            group = NORMALIZATION_LABELS.get(choice, choice) + (f" ({student})" if len(students) > 1 else "")
            bars.setdefault(group, {})["with AdaBN on real images" if adabn else "as trained"] = summary
        title = "Normalization statistics of the students"
        plot_grouped_bars(bars, figures / "ablation_normalization.png", title=title, references=references)
        sections += ["### Normalization", "", "![Normalization](figures/ablation_normalization.png)", "", *table, ""]
    table, presets = augmentation_table(records)
    if table:
        bars = {p: {f"trained on {k}": v for k, v in by_side.items()} for p, by_side in presets.items()}
        plot_grouped_bars(bars, figures / "ablation_augmentation.png", title="Augmentation presets")
        sections += ["### Augmentation", "", "![Augmentation](figures/ablation_augmentation.png)", "", *table, ""]
    table, students = texture_table(records)
    if table:
        bars = {k: {c: v[c] for c in ("clean", "grayscale_blur", "edges", "patch_shuffle") if c in v}
                for k, v in students.items()}  # fmt: skip
        plot_grouped_bars(bars, figures / "ablation_texture.png", title="Texture vs shape: accuracy per test variant")
        sections += ["### Texture vs shape", "", "![Texture vs shape](figures/ablation_texture.png)", "", *table, ""]
    table, _ = generator_table(records, baselines)
    if table:
        sections += ["### Synthetic source (generator choice)", "", *table, ""]
    table, mixing = mixing_table(records, baselines)
    if table:
        shares = {float(v[5:]): m for v, m in mixing.items() if v.startswith("share")}
        if shares and references:
            if "R" in references:
                shares.setdefault(0.0, references["R"])  # R's training set is the 0 % mix of the same size
            if "S" in references:
                shares.setdefault(1.0, references["S"])
            plot_mixing(shares, figures / "ablation_mixing.png", references=references)
            sections += ["### Mixing real and synthetic", "", "![Mixing](figures/ablation_mixing.png)", "", *table, ""]
        else:
            sections += ["### Mixing real and synthetic", "", *table, ""]
    if not sections:
        return []
    return ["## Ablations", "", ablation_reading(records), "", *sections]


def build_report(folder: Path) -> Path:
    folder = Path(folder)
    if not (folder / RESULTS_FILE).exists():
        raise SynthgapError(f"no {RESULTS_FILE} in {folder}: run an experiment with --out {folder} first")
    records = read_results(folder)
    lines = [f"# synthgap report: {folder.name}", "", f"{len(records)} finished runs.", ""]
    gap = gap_lines(records)
    if gap:
        lines += ["## Baselines: real (R) vs synthetic (S) training data", "", *gap, ""]
    lines += layer_transfer_lines(records, folder)
    lines += data_reduction_lines(records, folder)
    lines += ablation_lines(records, folder)
    lines += ["## All runs", "", *all_runs_lines(records), ""]
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
    import re

    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r"<img alt='\1' src='\2'>", text)
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
