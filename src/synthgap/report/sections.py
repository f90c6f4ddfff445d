"""The report's sections as a registry: each reports the records of some run kinds, in a fixed order, and a new
kind's section is one module that registers itself here (imported once in `build.py`).

A section is `(records of one model family, scope) -> Markdown lines`, empty when the folder has nothing for it; it
draws its figures into the scope's folder as a side effect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from synthgap.experiments.results import ResultRecord
from synthgap.registry import Registry
from synthgap.report.tables import file_tag
from synthgap.report.text import md_text


@dataclass(frozen=True)
class Scope:
    """Where one family's sections go: the report folder, and the family when the folder holds several (it then tags
    every heading and figure name)."""

    folder: Path
    model: str | None = None
    figures: Path | None = None  # where figures are drawn (default `folder`/figures); the report stages them

    def heading(self, title: str) -> str:
        return f"## {title} ({md_text(self.model)})" if self.model else f"## {title}"

    def figure(self, name: str) -> str:
        """The figure's path relative to the report, e.g. "figures/layer_sweep.png"."""
        return f"figures/{name}-{file_tag(self.model)}.png" if self.model else f"figures/{name}.png"

    def figure_path(self, name: str) -> Path:
        """Where the figure is drawn: its file name in `figures` (or in `folder`/figures)."""
        figures = self.figures if self.figures is not None else self.folder / "figures"
        return figures / Path(self.figure(name)).name


SectionLines = Callable[[list[ResultRecord], Scope], list[str]]


@dataclass(frozen=True)
class Section:
    name: str
    kinds: tuple[str, ...]  # the run kinds (ablations: "ablation:<name>") whose records it reports
    order: int  # sections appear by increasing order
    lines: SectionLines


SECTIONS: Registry[Section] = Registry("report section")


def section(name: str, *, kinds: tuple[str, ...], order: int) -> Callable[[SectionLines], SectionLines]:
    """Register the decorated function as the report section `name`."""

    def add(lines: SectionLines) -> SectionLines:
        SECTIONS.add(name, Section(name, kinds, order, lines))
        return lines

    return add


def ordered_sections() -> list[Section]:
    return sorted((SECTIONS.get(name) for name in SECTIONS), key=lambda s: s.order)


def reported_kinds() -> set[str]:
    """Every kind some section reports."""
    return {kind for name in SECTIONS for kind in SECTIONS.get(name).kinds}
