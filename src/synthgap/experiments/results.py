"""The results contract: one JSON object per finished run in `<experiment dir>/results.jsonl`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from synthgap.io import append_jsonl, read_jsonl

RESULTS_FILE = "results.jsonl"
RunKind = Literal["baseline", "layer_transfer", "data_reduction", "ablation"]


class ResultRecord(BaseModel):
    """Fields every consumer (report, outside checks) may rely on; extra fields are allowed and kept."""

    model_config = ConfigDict(extra="allow")

    run: str  # unique within the experiment
    kind: RunKind
    source: str | None  # data set that trained layers 1..N (None: no transfer)
    target: str  # data set that trained the rest
    n_transferred: int
    frozen: bool
    real_fraction: float = 1.0
    seed: int
    epochs: int
    top1: float  # percent, on the real test set
    top5: float
    train_images: int
    seconds: float


def read_results(folder: Path) -> list[ResultRecord]:
    return [ResultRecord.model_validate(r) for r in read_jsonl(Path(folder) / RESULTS_FILE)]


def finished_runs(folder: Path) -> set[str]:
    return {r["run"] for r in read_jsonl(Path(folder) / RESULTS_FILE)}


def append_result(folder: Path, record: ResultRecord) -> None:
    append_jsonl(Path(folder) / RESULTS_FILE, record.model_dump(mode="json"))
