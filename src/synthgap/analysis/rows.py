"""The analysis file: `<experiment dir>/analysis.jsonl`, one JSON object per (layer, measure[, student][, class]).

Each row is self-describing: which networks (runs, seeds, model cache keys), how many images of which set, the
measure's settings and a one-line definition. The report reads rows only through `read_analysis`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from synthgap.config import validate
from synthgap.io import atomic_write_text, read_jsonl_numbered

ANALYSIS_FILE = "analysis.jsonl"
Measure = Literal["cka", "probe_top1", "fd", "kid", "precision", "recall"]
MEASURES: tuple[str, ...] = ("cka", "probe_top1", "fd", "kid", "precision", "recall")


class AnalysisRow(BaseModel):
    """One number about one layer. `student` names whose features it is on ("R": trained on real, "S": trained on
    synthetic); a CKA row compares two networks and names them in `pair` ("R~S", or a seed noise floor "R~R" /
    "S~S"). `class_name` is None for rows over all classes."""

    model_config = ConfigDict(extra="allow")

    measure: Measure
    layer: int
    num_layers: int
    model: str  # the model family
    value: float | None  # None: not computed for this layer (`note` says why)
    student: str | None = None
    pair: str | None = None
    class_name: str | None = None
    runs: list[str]  # baseline runs whose networks were read, in the order of `pair` / `student`
    seeds: list[int]
    model_keys: list[str]
    images: dict[str, int]  # images per set the number was computed on, e.g. {"test": 2000}
    settings: dict  # the measure's settings
    definition: str
    details: dict = {}  # further numbers (e.g. FD's two terms and relative value, KID's standard error over blocks)
    note: str | None = None


def write_analysis(folder: Path, rows: list[AnalysisRow]) -> Path:
    """Replace `folder`/analysis.jsonl with `rows`, atomically (a reader sees the old file or the new one)."""
    path = Path(folder) / ANALYSIS_FILE
    text = "".join(json.dumps(row.model_dump(mode="json"), sort_keys=True) + "\n" for row in rows)
    atomic_write_text(path, text)
    return path


def read_analysis(folder: Path) -> list[AnalysisRow]:
    """The rows of `folder`/analysis.jsonl (none when there is no such file); a row of the wrong shape is one error
    naming the file and its line."""
    path = Path(folder) / ANALYSIS_FILE
    return [validate(AnalysisRow, row, where=f"{path}, line {number}") for number, row in read_jsonl_numbered(path)]
