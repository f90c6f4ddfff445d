"""Names from users' folders (class names, run names, data set labels, model names) as text in the report.

`md_text` is for report.md and the HTML rendered from it, `figure_text` for labels that matplotlib draws. A name is
whatever its folder or spec says, so it may contain Markdown (`**x**`, `![t](http://...)`), a newline and a `#`, a
`|`, an entity such as `&amp;`, or `$...$` (mathtext in a figure); both helpers make it show as the characters it is.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that mean something inside a line of CommonMark (emphasis, code, links and images, autolinks and raw
# HTML, entities, backslash escapes), plus `|` (a table cell) and `~` (strikethrough where a renderer enables it).
# Other punctuation (`.`, `-`, `:`, `(`, ...) only means something at the start of a line, handled below, so names
# such as "cifake:real" or "resnet-18" stay readable in report.md.
_INLINE = re.compile(r"[\\`*\[\]<>!&|~#]|_+")
# A block marker where the name starts a line: ATX heading, blockquote, list item, setext underline, ordered list.
_LINE_START = re.compile(r"^(\s*)([+-](?=\s|$)|=|\d{1,9}(?=[.)](?:\s|$)))")


def _one_line(name: str) -> str:
    """Newlines, tabs and other control characters (and Unicode line / paragraph separators) as spaces: a name
    must never end the line it is printed on."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in name)


def md_text(name: object) -> str:
    """`name` as Markdown text that renders as exactly its characters, on one line, inside a table cell, a heading
    or a sentence (CommonMark lets a backslash precede any ASCII punctuation)."""
    return _escape_line_start(_INLINE.sub(_escape, _one_line(str(name))))


def _escape(match: re.Match[str]) -> str:
    """A backslash before each character, except for underscores between two letters or digits ("transfer_finetune"):
    CommonMark never reads those as emphasis, and report.md stays readable."""
    text, start, end = match.string, match.start(), match.end()
    if match[0][0] == "_" and 0 < start and end < len(text) and text[start - 1].isalnum() and text[end].isalnum():
        return match[0]
    return "".join("\\" + c for c in match[0])


def _escape_line_start(text: str) -> str:
    match = _LINE_START.match(text)
    if match is None:
        return text
    start = match.end()
    if match[2].isdigit():  # "1. x" / "1) x" would start an ordered list: escape the punctuation after the number
        return text[:start] + "\\" + text[start:]
    return text[: match.start(2)] + "\\" + text[match.start(2) :]


def figure_text(name: object) -> str:
    """`name` as a matplotlib label that shows literally: an even number of `$` would be drawn as mathtext, and an
    escaped `\\$` is drawn as a plain `$` (matplotlib leaves usetex off here)."""
    return str(name).replace("$", r"\$")


def fraction_label(x: float) -> str:
    """'1' for all the data, else '1/x' ('1/8', '1/3.33')."""
    return "1" if x == 1 else f"1/{x:g}"
