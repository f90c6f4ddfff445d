"""Markdown → HTML for the report: `markdown_to_html` renders report.md with markdown-it-py (CommonMark + tables, raw
HTML off) into one UTF-8 page with its CSS. Each figure is a link to its file and never wider than the page (or, with
`embed_from`, inside the page as a base64 data URI); every table is in a box that scrolls sideways should it not fit,
its number cells right-aligned; a table of STACK_COLUMNS or more columns becomes a list of cards, one per row, on a page
too narrow for it (a phone). tests/report/test_browser_layout.py checks this in headless Chromium.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

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
