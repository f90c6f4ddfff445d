"""Results and analysis rows as pandas DataFrames: `load_results` and `load_analysis` (re-exported by
`synthgap.api` and `synthgap`).

Records are flattened (nested fields become dotted columns) and typed from their values, falling back to the types
the record classes declare for a column that is empty in every row. Importing this module is cheap: pandas, numpy
and the record classes are imported by the function that needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from synthgap.errors import SynthgapError
from synthgap.io import folder_argument

if TYPE_CHECKING:
    import os

    import pandas as pd

    from synthgap.experiments.results import ResultRecord

__all__ = ["load_analysis", "load_results"]


def load_results(folder: str | os.PathLike, per_class: bool = False, *, lists: bool = False) -> pd.DataFrame:
    """`folder`/results.jsonl as a DataFrame, one row per record, in file order.

    Columns are typed from the values: int64 (nullable Int64 where some records lack the field), float64 (NaN for
    missing), bool (nullable boolean), pandas strings; a field declared by the record classes but empty in every
    row gets the declared type. Nested fields are flattened with dots (`compute.device`, `compute.threads`,
    `cue_top1.<cue>`). Fields holding lists (`classes`, `confusion`, `per_class_top1`) are left out unless `lists`
    (then object columns of lists). With `per_class`, each class's top-1 (%) is a float column `top1.<class name>`,
    class names from the first baseline's `classes` in label order (`top1.<label>` when no baseline names them);
    NaN where a record has no per-class results."""
    from synthgap.experiments.results import RECORD_CLASSES, RESULTS_FILE, ResultRecord, read_results

    path = folder_argument(folder, "folder") / RESULTS_FILE
    if not path.is_file():
        raise SynthgapError(f"no {RESULTS_FILE} in {folder}: run an experiment with out={str(folder)!r} first")
    records = read_results(Path(folder))
    frame = _frame(
        [record.model_dump(mode="json") for record in records],
        _declared_kinds([ResultRecord, *RECORD_CLASSES.values()]),
        lists=lists,
    )
    if per_class:
        frame = frame.join(_per_class_frame(records, path))
    return frame


def load_analysis(folder: str | os.PathLike, *, lists: bool = False) -> pd.DataFrame:
    """`folder`/analysis.jsonl as a DataFrame, one row per (layer, measure[, student][, class]), typed and flattened
    as in `load_results` (`images.test`, `settings.<name>`, `details.<name>`; the lists `runs`, `seeds`,
    `model_keys` only with `lists`)."""
    from synthgap.analysis.rows import ANALYSIS_FILE, AnalysisRow, read_analysis

    if not (folder_argument(folder, "folder") / ANALYSIS_FILE).is_file():
        raise SynthgapError(f"no {ANALYSIS_FILE} in {folder}: run synthgap.analyze({str(folder)!r}) first")
    rows = [row.model_dump(mode="json") for row in read_analysis(Path(folder))]
    return _frame(rows, _declared_kinds([AnalysisRow]), lists=lists)


# --- helpers ----------------------------------------------------------------------------------------------------------


def _declared_kinds(classes: list[type]) -> dict[str, str]:
    """{field name: "bool" | "int" | "float" | "str"} for the fields of pydantic `classes` with a scalar type."""
    kinds: dict[str, str] = {}
    for cls in classes:
        for name, field in cls.model_fields.items():
            kind = _annotation_kind(field.annotation)
            if kind is not None:
                kinds.setdefault(name, kind)
    return kinds


def _annotation_kind(annotation: Any) -> str | None:
    if get_origin(annotation) is Literal:
        return _value_kind(list(get_args(annotation)))
    args = [arg for arg in get_args(annotation) if arg is not type(None)] if get_origin(annotation) else [annotation]
    if len(args) == 1 and args[0] in (bool, int, float, str):
        return args[0].__name__
    return None


def _value_kind(values: list[Any]) -> str | None:
    """The one scalar type of non-null `values` (ints and floats together are floats); None for anything else."""
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if any(isinstance(v, bool) for v in values):
        return None
    if all(isinstance(v, int) for v in values):
        return "int"
    if all(isinstance(v, (int, float)) for v in values):
        return "float"
    if all(isinstance(v, str) for v in values):
        return "str"
    return None


def _flat(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"compute": {"device": "cpu"}}` → `{"compute.device": "cpu"}`, at any depth."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _frame(rows: list[dict[str, Any]], declared: dict[str, str], *, lists: bool) -> pd.DataFrame:
    import pandas as pd

    flat = [_flat(row) for row in rows]
    names = list(dict.fromkeys(name for row in flat for name in row))  # in order of first appearance
    columns = {}
    for name in names:
        values = [row.get(name) for row in flat]
        if all(v is None for v in values) and any(other.startswith(f"{name}.") for other in names):
            continue  # a nested field that is null in some rows: its flattened columns say it
        if not lists and any(isinstance(v, list) for v in values):
            continue
        columns[name] = _column(values, declared.get(name))
    return pd.DataFrame(columns, index=pd.RangeIndex(len(flat)))


def _column(values: list[Any], declared: str | None) -> pd.Series:
    import numpy as np
    import pandas as pd

    present = [v for v in values if v is not None]
    kind = _value_kind(present) if present else declared
    complete = len(present) == len(values)
    if kind == "bool":
        return pd.Series(values, dtype=bool if complete else "boolean")
    if kind == "int":
        return pd.Series(values, dtype="int64" if complete else "Int64")
    if kind == "float":
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
    if kind == "str":
        return pd.Series(values, dtype="str")
    return pd.Series(values, dtype=object)


def _per_class_frame(records: list[ResultRecord], path: Path) -> pd.DataFrame:
    """One float column `top1.<class>` per class (see `load_results`)."""
    import numpy as np
    import pandas as pd

    from synthgap.experiments.results import BaselineRecord

    names = next((list(r.classes) for r in records if isinstance(r, BaselineRecord) and r.classes), None)
    lengths = [len(r.per_class_top1) for r in records if r.per_class_top1]
    if names is None and not lengths:
        raise SynthgapError(f"no record in {path} has per-class results (per_class_top1)")
    names = names or [str(label) for label in range(max(lengths))]
    table = [
        [np.nan if v is None else v for v in r.per_class_top1]
        if r.per_class_top1 and len(r.per_class_top1) == len(names)
        else [np.nan] * len(names)
        for r in records
    ]
    return pd.DataFrame(table, columns=[f"top1.{name}" for name in names], dtype="float64")
