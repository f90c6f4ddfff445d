"""Names from users' folders (classes, runs, data sets, generator labels) show in the report as the text they are:
never as Markdown, HTML, an entity or, in a figure, mathtext."""

from __future__ import annotations

import html
import io
import re

import pytest
from markdown_it import MarkdownIt
from matplotlib.figure import Figure

from synthgap.experiments.results import append_result
from synthgap.report.build import build_report
from synthgap.report.text import figure_text, md_text
from tests.report.records import make_record, transfer_record

HOSTILE = [
    "**bold**",
    "![t](http://example.invalid/x.png)",
    "a\n## heading",
    "x|y",
    "&amp;",
    "$x^2$",
    r"$\foo$",  # not valid mathtext: drawing it as mathtext raises
    "_em_ <b>tag</b> `code` [link](http://example.invalid)",
    "1. listed",
    "- bullet",
]
REAL, SYNTH = "folder:/data/**real**|x", "![s](http://example.invalid/s.png)"


def one_line(name: str) -> str:
    return name.replace("\n", " ")


def rendered(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)


@pytest.mark.parametrize("name", [*HOSTILE, "tab\there", "cifake:real", "transfer_finetune", "a\\b"])
def test_md_text_renders_as_exactly_the_name(name):
    paragraph = rendered(f"Class {md_text(name)} ends here.\n")
    assert html.unescape(paragraph) == f"<p>Class {one_line(name).replace(chr(9), ' ')} ends here.</p>\n"
    table = rendered(f"| class | top-1 |\n|---|---|\n| {md_text(name)} | 1.00 |\n")
    cells = re.findall(r"<td>(.*?)</td>", table)
    assert [html.unescape(c) for c in cells] == [one_line(name).replace(chr(9), " ").strip(), "1.00"]


def test_md_text_keeps_ordinary_names_readable():
    assert md_text("cifake:real") == "cifake:real"
    assert md_text("transfer_finetune (k=16)") == "transfer_finetune (k=16)"
    assert md_text("resnet-18") == "resnet-18"
    assert md_text("**b**|c&d\ne") == r"\*\*b\*\*\|c\&d e"


def test_figure_text_draws_dollars_literally():
    assert figure_text("$x^2$") == r"\$x^2\$"
    fig = Figure()
    ax = fig.add_subplot()
    ax.set_title(figure_text(r"$\foo$"))  # as mathtext this raises on drawing
    ax.set_xticks([0, 1], [figure_text("$x^2$"), figure_text("cost $5")])
    fig.savefig(io.BytesIO(), format="png")
    assert not ax.title._preprocess_math(ax.title.get_text())[1]  # drawn as plain text, "$" shown


def baseline(side: str, seed: int, per_class: list[float]):
    return make_record(
        run=f"{HOSTILE[seed % len(HOSTILE)]}-{side}-s{seed}",
        target=REAL if side == "real" else SYNTH,
        side=side,
        seed=seed,
        top1=sum(per_class) / len(per_class),
        per_class_top1=per_class,
        classes=HOSTILE,
        confusion=[[10 if i == j else 1 for j in range(len(HOSTILE))] for i in range(len(HOSTILE))],
    )


def hostile_records():
    count = len(HOSTILE)
    real = [80.0 - i for i in range(count)]
    synthetic = [40.0 + 3 * i for i in range(count)]
    students = [70.0 - i for i in range(count)]
    records = [baseline("real", 0, real), baseline("synthetic", 0, synthetic)]
    for n in (8, 12, 16):
        run = f"{HOSTILE[n % count]}-n{n}"
        records.append(transfer_record(n, 65.0, run=run, source=SYNTH, target=REAL, per_class_top1=students))
    for name in HOSTILE[:3]:
        records.append(
            make_record(
                run=f"gen-{name}",
                kind="ablation",
                ablation="generator",
                side="synthetic",
                target=name,
                label=name,
                top1=55.0,
            )
        )
    for side in ("real", "synthetic"):
        records.append(
            make_record(
                run=f"aug-{side}",
                kind="ablation",
                ablation="augmentation",
                side=side,
                augmentation=r"$\foo$",
                target=REAL if side == "real" else SYNTH,
                top1=70.0 if side == "real" else 45.0,
            )
        )
    return records


def unescaped_pipes(line: str) -> int:
    """The `|` of a Markdown table line that separate cells (not those a backslash escapes)."""
    count, escaped = 0, False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            count += 1
    return count


def tables(markdown: str) -> list[list[str]]:
    """The Markdown tables of a report, each a list of its lines."""
    found, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def test_a_report_shows_hostile_names_as_text(tmp_path):
    for record in hostile_records():
        append_result(tmp_path, record)
    markdown = build_report(tmp_path).read_text()
    page = (tmp_path / "report.html").read_text()

    # no image but the report's own figures, no emphasis or heading or link made of a name
    sources = re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)
    assert sources and all(src.startswith("figures/") for src in sources)
    links = re.findall(r"<a [^>]*>", page)  # the only links: each figure's, to open it full size
    assert all(re.fullmatch(r'<a class="figure" href="figures/[^"]*">', link) for link in links)
    assert "<strong>bold</strong>" not in page and "<em>" not in page and "<code>" not in page
    assert "<b>" not in page and "<ol" not in page
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert "heading" not in " ".join(headings)
    assert headings == [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    # every table row has as many cells as its header
    found = tables(markdown)
    assert len(found) >= 4
    for table in found:
        assert {unescaped_pipes(line) for line in table} == {unescaped_pipes(table[0])}, table
    assert "<td>x|y</td>" in page
    # entities stay literal; every name is there as text: per-class table and sentences, all runs, generator labels
    assert "&amp;amp;" in page
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    for name in [*HOSTILE, REAL, SYNTH, r"$\foo$"]:
        assert one_line(name) in text, name
    assert f"{one_line(HOSTILE[0])}-real-s0" in text  # a run name
