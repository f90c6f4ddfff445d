"""The report's colours: the Okabe–Ito palette, told apart by readers with any common colour-vision deficiency, and
a note saying what the error bars of a figure are (a reader cannot tell std from a standard error by looking)."""

from __future__ import annotations

from collections.abc import Iterable

from synthgap.report.tables import Summary

BLUE, ORANGE, SKY, GREEN = "#0072B2", "#E69F00", "#56B4E9", "#009E73"
YELLOW, VERMILLION, PURPLE, BLACK = "#F0E442", "#D55E00", "#CC79A7", "#000000"

R_COLOR, S_COLOR = BLUE, VERMILLION  # the two baselines, everywhere
SERIES_COLORS = (ORANGE, SKY, GREEN, PURPLE, BLACK)  # curves and bars beside R and S (yellow is faint on white)


def seeds_phrase(summaries: Iterable[Summary]) -> str:
    """ "3 seeds", "2–3 seeds" or "1 seed": how many seeds the shown means are over."""
    counts = sorted({s.n for s in summaries})
    if not counts:
        return "no seeds"
    low, high = counts[0], counts[-1]
    span = f"{low}" if low == high else f"{low}–{high}"
    return f"{span} seed{'' if high == 1 else 's'}"


def spread_note(summaries: Iterable[Summary], what: str = "error bars") -> str:
    """The legend line that says what `what` shows, e.g. "error bars: ±1 std over 3 seeds"; with a single seed
    everywhere there is no spread to show, and the line says so."""
    summaries = list(summaries)
    if all(s.n <= 1 for s in summaries):
        return f"1 seed each: no {what}"
    return f"{what}: ±1 std over {seeds_phrase(summaries)}"
