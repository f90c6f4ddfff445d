"""The results contract: one JSON object per finished run in `<experiment dir>/results.jsonl`.

Records are typed per kind: the report reads their fields directly. `read_results` picks the class from a line's
`kind` (and, for ablations, its `ablation`), so a file written by any version parses into the richest class it fits.
Each kind registers its record classes (`experiments/kinds/`); the fields every record shares are here, the transfer
fields with defaults that say "no transfer", so a kind without one sets none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from synthgap.config import validate
from synthgap.io import append_jsonl, read_jsonl, read_jsonl_numbered

RESULTS_FILE = "results.jsonl"
SUPERSEDED_FILE = "superseded.jsonl"


class ResultRecord(BaseModel):
    """Fields every consumer (report, outside checks) may rely on; extra fields are allowed and kept."""

    model_config = ConfigDict(extra="allow")

    run: str  # unique within the experiment
    kind: str  # a registered kind's name (ablations: "ablation", with `ablation` naming which)
    source: str | None = None  # data set that trained layers 1..N (None: no transfer)
    target: str  # data set that trained the rest
    n_transferred: int = 0
    frozen: bool = False
    real_fraction: float = 1.0
    seed: int
    epochs: int
    top1: float  # percent, on the real test set
    top5: float
    train_images: int
    seconds: float
    # Identity and context: which sides trained the rest and layers 1..N ("real" / "synthetic", whatever the data
    # are called), the
    # hash of every setting that determined this number, and the model family with its layer count.
    side: str | None = None
    source_side: str | None = None  # which side trained layers 1..N (None: no transfer)
    fingerprint: str | None = None
    compute: dict | None = None  # device type, CPU threads and precision the run computed with
    test: str | None = None
    model: str | None = None
    num_layers: int | None = None
    skipped_images: int = 0
    # Per class, on the real test set (classes in the order of the baselines' `classes`): mean per-class top-1,
    # which an imbalanced test set does not tilt, and each class's top-1 (None for a class without test images).
    balanced_top1: float | None = None
    per_class_top1: list[float | None] | None = None
    preset: str | None = None  # the recipe preset the run's recipe started from
    tta: str | None = None  # test-time augmentation of top1/top5 ("flip": mean of image and mirror; synthgap.train.tta)

    @field_validator("kind")
    @classmethod
    def _registered_kind(cls, value: str) -> str:
        known = {key.partition(":")[0] for key in RECORD_CLASSES}
        if value not in known:
            raise ValueError(f"unknown kind {value!r}; known: {', '.join(sorted(known))}")
        return value


class BaselineRecord(ResultRecord):
    kind: Literal["baseline"] = "baseline"
    model_key: str | None = None  # the model cache entry holding this student
    reused_model: bool = False
    augmentation: str | None = None  # the recipe's (stage 2 of a sweep may use another)
    classes: list[str] | None = None  # class names, in label order
    recipe: dict | None = None  # every value of the recipe that trained it (the preset resolved)
    confusion: list[list[int]] | None = None  # test counts: row = true class, column = predicted class
    # the learning curve: [epoch, top-1 %, seconds of training] of every evaluation during training, all on the
    # same `curve_images` test images (a fixed subset, or all); absent when the recipe evaluated only after the end
    curve: list[list[float]] | None = None
    curve_images: int | None = None


class AblationRecord(ResultRecord):
    kind: Literal["ablation"] = "ablation"
    ablation: str
    variant: str = ""  # a label for people; the report reads the typed fields of each ablation's record


RECORD_CLASSES: dict[str, type[ResultRecord]] = {}  # "kind" or "ablation:<name>" → class; filled by the kinds


def record_key(data: dict | type[ResultRecord]) -> str:
    """The key a results line (or a record class, by its defaults) is parsed by."""
    if isinstance(data, type):
        data = {name: field.default for name, field in data.model_fields.items() if name in ("kind", "ablation")}
    kind = data.get("kind")
    return f"ablation:{data.get('ablation')}" if kind == "ablation" else str(kind)


def register_records(classes: tuple[type[ResultRecord], ...]) -> None:
    for cls in classes:
        key = record_key(cls)
        if key in RECORD_CLASSES and RECORD_CLASSES[key] is not cls:
            raise ValueError(f"two record classes for {key!r}")
        RECORD_CLASSES[key] = cls


OTHER_SIDE = {"real": "synthetic", "synthetic": "real"}


def parse_record(data: dict, where: str = "a results line") -> ResultRecord:
    """The typed record for one results line (a plain `ResultRecord` when its kind is unknown here). A kind's record
    class reads its own older lines (e.g. those written before `source_side` existed)."""
    # a line of the wrong shape (a damaged or hand-edited file) is one error naming where it is
    return validate(RECORD_CLASSES.get(record_key(data), ResultRecord), data, where=where)


def read_results(folder: Path) -> list[ResultRecord]:
    path = Path(folder) / RESULTS_FILE
    return [parse_record(r, f"{path}, line {number}") for number, r in read_jsonl_numbered(path)]


def recorded_fingerprints(folder: Path) -> dict[str, str | None]:
    """{run name: fingerprint} of every record in the folder (None for records written without one)."""
    return {r["run"]: r.get("fingerprint") for r in read_jsonl(Path(folder) / RESULTS_FILE)}


def finished_runs(folder: Path) -> set[str]:
    return set(recorded_fingerprints(folder))


def append_result(folder: Path, record: ResultRecord) -> None:
    append_jsonl(Path(folder) / RESULTS_FILE, record.model_dump(mode="json"))
