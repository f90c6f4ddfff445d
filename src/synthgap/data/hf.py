"""``hf:`` data sources: a Hugging Face `datasets` dataset with an image column and a class-label column.

``hf:<dataset id or local path>[?split=...&test_split=...&image=...&label=...&config=...]`` reads:

- a ``save_to_disk`` folder (``load_from_disk``);
- a parquet file, or a folder of parquet files or of images with a metadata file (``imagefolder``), through
  ``load_dataset`` as that library infers the format and the splits;
- a dataset id from the Hugging Face cache, downloaded only when the hub is reachable and neither
  ``HF_DATASETS_OFFLINE`` nor ``HF_HUB_OFFLINE`` is set (the rule the generators' models follow).

The columns are found when unambiguous (one ``Image`` feature; one ``ClassLabel``, else one string column, else the
one called ``image`` / ``label``) and named with ``image=`` / ``label=`` otherwise. Class names are the
``ClassLabel``'s, or the sorted distinct strings of every split. The train role reads ``split`` (default ``train``,
or the only split), the test role ``test_split`` (default ``test``, else ``validation``). Rows are decoded from the
Arrow data into the usual cache without writing image files (`data/items.py`), and the set is identified by the
dataset's fingerprint, so a changed dataset is a changed setting.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthgap.data.cachedir import default_cache_dir
from synthgap.data.describe import DESCRIBERS
from synthgap.data.index import LabelledIndex
from synthgap.data.items import ImageItems, ImageSource
from synthgap.data.sources import SOURCES, DataRef, check_no_empty_class
from synthgap.errors import SynthgapError
from synthgap.hub import hub_offline
from synthgap.io import atomic_write_json, file_version

if TYPE_CHECKING:
    import datasets

TRAIN_SPLITS = ("train",)
TEST_SPLITS = ("test", "validation")
SAVED_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk writes (a DatasetDict, a Dataset)
# What `synthgap export` writes first and last (generate/export.py's EXPORT and SHARDS, named here rather than
# imported: the data stage does not import the generation stage). Settings without data/ are a killed export.
EXPORT_SETTINGS = "export.json"
EXPORT_DATA = "data"


@dataclass(frozen=True)
class HfSplit:
    """One split of a dataset, its columns resolved: what an index and `data describe` are made from."""

    title: str  # e.g. "hf:/data/pets[train]"
    dataset: datasets.Dataset
    image: str
    label: str
    classes: tuple[str, ...]
    labels: np.ndarray
    folder: Path | None  # where image paths stored in rows may point


@SOURCES.register("hf")
def open_hf(
    name: str,
    role: str,
    data_root: Path | None,
    *,
    split: str | None = None,
    test_split: str | None = None,
    image: str | None = None,
    label: str | None = None,
    config: str | None = None,
) -> LabelledIndex:
    """Index a split of a `datasets` dataset: `role` "train" reads `split`, "test" reads `test_split`."""
    splits, where, signature = load_splits(name, config)
    chosen = choose_split(name, splits, role, split if role == "train" else test_split)
    return split_index(name, splits, chosen, image=image, label=label, folder=where, signature=signature)


def split_index(
    name: str,
    splits: dict[str, Any],
    chosen: str,
    *,
    image: str | None,
    label: str | None,
    folder: Path | None,
    signature: str = "",
) -> LabelledIndex:
    """The labelled index of one split (its columns found or checked). `signature` stands for the local files
    (`files_signature`): with the dataset's fingerprint, it identifies the images."""
    resolved = resolve_split(f"hf:{name}[{chosen}]", splits, chosen, image=image, label=label, folder=folder)
    return resolved_index(resolved, folder or Path(name), signature)


def resolved_index(resolved: HfSplit, root: Path, signature: str) -> LabelledIndex:
    """The labelled index of a split whose columns are resolved."""
    items = ArrowItems(
        resolved.dataset.select_columns([resolved.image]),
        resolved.image,
        np.arange(len(resolved.dataset), dtype=np.int64),
        resolved.title,
        fingerprint=f"{resolved.dataset._fingerprint}:{signature}:{resolved.image}",
        folder=resolved.folder,
    )
    index = LabelledIndex(resolved.title, root, "hf", resolved.classes, items, resolved.labels)
    check_no_empty_class(index)
    return index


@DESCRIBERS.register("hf")
def describe_hf(ref: DataRef, data_root: Path | None) -> tuple[str, list[LabelledIndex]]:
    """For `synthgap data describe hf:...`: a head (where, splits, columns) and an index per split; with ?split= or
    ?test_split=, only the splits named (each must exist), as a spec's sides would read them."""
    options = dict(ref.options)
    image, label = options.get("image"), options.get("label")
    splits, where, signature = load_splits(ref.argument, options.get("config"))
    named = [options[option] for option in ("split", "test_split") if option in options]
    for asked in named:
        choose_split(ref.argument, splits, "train", asked)  # an unknown split: one error listing the splits
    head = [
        f"layout: Hugging Face dataset ({where if where else ref.argument + ', from the hub cache'})",
        "splits: " + ", ".join(f"{split} ({len(dataset)} rows)" for split, dataset in splits.items()),
    ]
    indexes, problems = [], []
    for chosen in [split for split in splits if split in named] or list(splits):
        try:  # a split that cannot serve (unlabelled test rows, say) is a line, not the end
            resolved = resolve_split(
                f"hf:{ref.argument}[{chosen}]", splits, chosen, image=image, label=label, folder=where
            )
            index = resolved_index(resolved, where or Path(ref.argument), signature)
        except SynthgapError as exc:
            problems.append(f"split {chosen}: not usable as a side: {exc}")
            continue
        if not indexes:
            kind = (
                "ClassLabel" if type(resolved.dataset.features[resolved.label]).__name__ == "ClassLabel" else "strings"
            )
            head.append(f"image column: {resolved.image}; label column: {resolved.label} ({kind})")
        indexes.append(index)
    if not indexes:
        raise SynthgapError(f"hf:{ref.argument}: no split can serve as a side: {'; '.join(problems)}")
    return "\n".join(head + problems), indexes


# --- the items: rows of an Arrow table -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ArrowItems(ImageItems):
    """Rows of a `datasets.Dataset`'s image column: encoded bytes, or a path to an image file.

    `dataset` holds only the image column and no indices mapping, so a row number is a position in its Arrow table.
    A path stored in a row must lie in `folder` (the dataset's own folder): a dataset cannot make synthgap read a
    file elsewhere. Rows that store bytes are identified by the dataset's fingerprint; rows that store paths also by
    the file's size, modification and change time (what the decoded cache remembers its key under).
    """

    dataset: datasets.Dataset
    column: str
    rows: np.ndarray  # int64 row numbers in `dataset`
    title: str  # how the data set is named in messages, e.g. "hf:/data/pets[train]"
    fingerprint: str
    folder: Path | None  # where stored paths may point; None: rows must hold bytes
    numbers: np.ndarray | None = None  # the rows' numbers in the user's dataset, when `dataset` holds only some rows
    kind = "dataset row"

    @property
    def _numbers(self) -> np.ndarray:
        return self.rows if self.numbers is None else self.numbers

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, positions: Sequence[int] | np.ndarray) -> ArrowItems:
        positions = np.asarray(positions, dtype=np.int64)
        numbers = None if self.numbers is None else self.numbers[positions]
        return ArrowItems(
            self.dataset, self.column, self.rows[positions], self.title, self.fingerprint, self.folder, numbers
        )

    def name(self, position: int) -> str:
        return f"{self.title} row {int(self._numbers[position])}"

    def identities(self) -> Iterator[str]:
        paths = self._stored_paths()  # only the rows that hold a path instead of bytes (never the bytes)
        for row, path in zip(self._numbers.tolist(), paths, strict=True):
            identity = f"{self.fingerprint}\0{row}"
            if path is not None:
                try:
                    st = self._file(row, path).stat()
                except OSError as exc:
                    raise SynthgapError(
                        f"{self.title} row {row}: its image file {path} cannot be read "
                        f"({exc.strerror or type(exc).__name__})"
                    ) from None
                identity += f"\0{file_version(st)}"
            yield identity

    def sources(self) -> Iterator[tuple[str, ImageSource]]:
        for row, value in zip(self._numbers.tolist(), self._values(), strict=True):
            name = f"{self.title} row {row}"
            if value.get("bytes") is not None:
                yield name, io.BytesIO(value["bytes"])
            elif value.get("path"):
                yield name, self._file(row, value["path"])
            else:
                yield name, io.BytesIO(b"")  # an empty row: decoding reports it like any unreadable image

    def __reduce__(self) -> tuple:
        """Sent to a decoding worker: a memory-mapped dataset pickles as its files; one held in memory (datasets'
        `HF_DATASETS_IN_MEMORY_MAX_SIZE`) would pickle whole, so only these rows go."""
        import datasets

        fields = (self.column, self.title, self.fingerprint, self.folder)
        if isinstance(self.dataset.data, datasets.table.MemoryMappedTable):
            return _arrow_items, (self.dataset, self.rows, *fields, self.numbers)
        rows = datasets.Dataset(datasets.table.InMemoryTable(self._taken()))
        return _arrow_items, (rows, np.arange(len(self.rows), dtype=np.int64), *fields, self._numbers)

    def _taken(self):  # -> pyarrow.Table
        table = self.dataset.data.table.select([self.column])
        return table.take(self.rows) if len(self.rows) else table.slice(0, 0)

    def _values(self) -> list[dict]:
        """The image column's {bytes, path} structs of these rows, read from Arrow in one call (a chunk's worth)."""
        taken = self._taken().column(self.column)
        return [value if isinstance(value, dict) else {"bytes": value, "path": None} for value in taken.to_pylist()]

    def _stored_paths(self) -> list[str | None]:
        """For each row, the file path it stores instead of bytes, else None; read without touching the bytes."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.dataset.data.table.column(self.column)
        if not pa.types.is_struct(column.type):  # plain binary: every row holds bytes
            return [None] * len(self.rows)
        no_bytes = pc.is_null(pc.struct_field(column, "bytes"))
        if not pc.any(no_bytes).as_py():
            return [None] * len(self.rows)
        paths = pc.if_else(no_bytes, pc.struct_field(column, "path"), None).take(self.rows)
        return paths.to_pylist()

    def _file(self, row: int, stored: str) -> Path:
        """The image file a row names, which must lie inside the dataset's folder (links resolved)."""
        if self.folder is None:
            raise SynthgapError(
                f"{self.title} row {row} names an image file ({stored}) instead of holding its bytes; a dataset "
                "read from the Hub or cache must embed its images"
            )
        path = Path(stored) if os.path.isabs(stored) else self.folder / stored
        inside = self.folder.resolve()
        if not path.resolve().is_relative_to(inside):
            raise SynthgapError(
                f"{self.title} row {row} names an image file outside the dataset's folder {inside}: {stored}"
            )
        return path


def _arrow_items(dataset, rows, column, title, fingerprint, folder, numbers) -> ArrowItems:  # noqa: ANN001
    """ArrowItems rebuilt in a worker (the positional order of `ArrowItems.__reduce__`)."""
    return ArrowItems(dataset, column, rows, title, fingerprint, folder, numbers)


# --- loading -------------------------------------------------------------------------------------------------------


def load_splits(name: str, config: str | None) -> tuple[dict[str, datasets.Dataset], Path | None, str]:
    """Every split of the dataset `name` (a local path or a hub id), the local folder it lives in (None: hub), and
    the signature of its local files ("" for a hub id).

    A process opens a source several times (the dry run's checks, each run's identity and images): the result is
    kept per process, keyed on the name, the config and the signature, so a hub id is looked up once and a dataset
    whose files change is read again."""
    local = Path(name).expanduser()
    signature = files_signature(local) if local.exists() else ""
    key = (name, config, signature)
    if key not in _LOADED:
        splits, where = _load_splits(name, config, signature)
        _LOADED[key] = (splits, where, signature)
    return _LOADED[key]


_LOADED: dict[tuple[str, str | None, str], tuple[dict[str, Any], Path | None, str]] = {}


def files_signature(local: Path) -> str:
    """A digest of every file of a local dataset (a file, or a folder at any depth): relative path, size, and
    modification and change times. A file replaced by one with the same modification time (`cp -p`, `rsync -a`,
    an unpacked archive) still changes its change time, so it changes the signature."""
    digest = hashlib.sha256()
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for path in files:
        st = path.stat()
        relative = path.name if path == local else path.relative_to(local).as_posix()
        digest.update(f"{relative}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _load_splits(name: str, config: str | None, signature: str) -> tuple[dict[str, datasets.Dataset], Path | None]:
    local = Path(name).expanduser()
    _check_finished_export(name, local)
    with _quiet_datasets() as datasets:
        try:
            if local.is_dir() and any((local / marker).is_file() for marker in SAVED_MARKERS):
                _no_config(name, config, "a save_to_disk folder")
                loaded = datasets.load_from_disk(str(local))
            elif local.is_file() and local.suffix == ".parquet":
                _no_config(name, config, "a parquet file")
                loaded = _converted(datasets, local, signature, "parquet", data_files={"train": str(local)})
                local = local.parent
            elif local.exists():
                loaded = _converted(datasets, local, signature, str(local), name=config)
            else:
                return _load_hub(datasets, name, config), None
        except SynthgapError:
            raise
        except (OSError, ValueError, TypeError, datasets.exceptions.DatasetsError) as exc:
            raise SynthgapError(f"cannot read dataset {local}: {_first_line(exc)}") from None
    if isinstance(loaded, datasets.Dataset):
        loaded = {"train": loaded}
    return dict(loaded), local


def _check_finished_export(name: str, local: Path) -> None:
    """A killed `synthgap export` holds its settings and no data/ yet: `load_dataset` would read export.json as the
    data set, so it is named for what it is."""
    if local.is_dir() and (local / EXPORT_SETTINGS).is_file() and not (local / EXPORT_DATA).is_dir():
        raise SynthgapError(
            f"hf:{name} is an unfinished synthgap export (no {EXPORT_DATA}/ yet): run `synthgap export` again to "
            "finish it"
        )


def _no_config(name: str, config: str | None, what: str) -> None:
    if config is not None:
        raise SynthgapError(f"hf:{name} is {what}, which has no configurations; drop ?config={config}")


def _converted(datasets: Any, local: Path, signature: str, *args: Any, **kwargs: Any) -> Any:
    """`load_dataset(*args, **kwargs)` for local files, converted again when they changed.

    `load_dataset` keeps its Arrow copy of local files under a key of their paths and modification times. A file
    replaced by one with the same time would be read from the old copy: when the files' signature changed and the
    dataset's fingerprints did not, it converts them again (force_redownload). What was seen is kept in
    <synthgap cache>/hf/."""
    loaded = datasets.load_dataset(*args, **kwargs)
    where = hashlib.sha256(repr((str(local.resolve()), args, sorted(kwargs.items()))).encode()).hexdigest()[:24]
    seen_file = default_cache_dir() / "hf" / f"{where}.json"
    fingerprints = {split: dataset._fingerprint for split, dataset in dict(loaded).items()}
    try:
        seen = json.loads(seen_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    if seen.get("signature") not in (None, signature) and seen.get("fingerprints") == fingerprints:
        loaded = datasets.load_dataset(*args, **kwargs, download_mode="force_redownload", verification_mode="no_checks")
        fingerprints = {split: dataset._fingerprint for split, dataset in dict(loaded).items()}
    if seen != {"signature": signature, "fingerprints": fingerprints}:
        seen_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(seen_file, {"signature": signature, "fingerprints": fingerprints})
    return loaded


def _load_hub(datasets: Any, name: str, config: str | None) -> dict[str, Any]:
    try:
        return dict(datasets.load_dataset(name, name=config))
    except (OSError, ValueError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as exc:
        offline = hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "") not in ("", "0")
        raise SynthgapError(
            f"cannot load dataset {name!r}: it is no local path, and the Hugging Face cache "
            f"{datasets.config.HF_DATASETS_CACHE} "
            + ("holds no copy (offline: no download tried)" if offline else "holds no copy and the download failed")
            + f": {_first_line(exc)}. Fetch it where there is network (`hf download {name} --repo-type dataset`, or "
            f"`datasets.load_dataset({name!r})`) and point HF_HOME at that cache, or pass hf:/path/to/a/local/copy"
        ) from None


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[Any]:
    """The datasets module, its progress bars and info logging off: synthgap reports its own progress."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    verbosity = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its error logs repeat what the exception says
    try:
        yield datasets
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars:
            datasets.enable_progress_bars()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# --- splits and columns --------------------------------------------------------------------------------------------


def choose_split(name: str, splits: dict[str, Any], role: str, asked: str | None) -> str:
    """The split a role reads: the one asked for, else the role's usual names (train: the only split too)."""
    available = ", ".join(splits)
    option = "split" if role == "train" else "test_split"
    if asked is not None:
        if asked not in splits:
            raise SynthgapError(f"hf:{name} has no split {asked!r}; its splits: {available}")
        return asked
    for candidate in TRAIN_SPLITS if role == "train" else TEST_SPLITS:
        if candidate in splits:
            return candidate
    if role == "train" and len(splits) == 1:
        return next(iter(splits))
    wanted = " or ".join(repr(s) for s in (TRAIN_SPLITS if role == "train" else TEST_SPLITS))
    raise SynthgapError(
        f"hf:{name} has no {wanted} split for the {role} data (its splits: {available}); name one with "
        f"hf:{name}?{option}=NAME"
    )


def resolve_split(
    title: str,
    splits: dict[str, Any],
    chosen: str,
    *,
    image: str | None,
    label: str | None,
    folder: Path | None,
) -> HfSplit:
    """The split's image and label columns (found or checked), its class names and its labels."""
    import datasets

    dataset = splits[chosen]
    if dataset._indices is not None:  # a view: rows are read by position in the Arrow table
        dataset = dataset.flatten_indices()
    image = _column(title, dataset, image, "image", _image_columns(dataset))
    feature = dataset.features[image]
    if not (isinstance(feature, datasets.Image) or getattr(feature, "dtype", None) in ("binary", "large_binary")):
        raise SynthgapError(f"{title}: column {image!r} is {feature}, not images; name the image column with ?image=")
    label = _column(title, dataset, label, "label", _label_columns(dataset, image))
    classes, labels = _labels(title, splits, dataset, label)
    return HfSplit(title, dataset, image, label, classes, labels, folder)


def _image_columns(dataset: Any) -> list[str]:
    import datasets

    return [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)]


def _label_columns(dataset: Any, image: str) -> list[str]:
    """ClassLabel columns; when there is none, string columns."""
    import datasets

    features = {name: f for name, f in dataset.features.items() if name != image}
    class_labels = [name for name, f in features.items() if isinstance(f, datasets.ClassLabel)]
    return class_labels or [name for name, f in features.items() if _is_string(f)]


def _is_string(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def _column(title: str, dataset: Any, asked: str | None, what: str, candidates: list[str]) -> str:
    columns = ", ".join(dataset.column_names)
    if asked is not None:
        if asked not in dataset.column_names:
            raise SynthgapError(f"{title} has no column {asked!r} (its columns: {columns})")
        return asked
    if len(candidates) == 1:
        return candidates[0]
    if what in candidates:  # several, one of them named like the role ("label"): the convention of the hub
        return what
    kind = "Image feature" if what == "image" else "ClassLabel or string column"
    if not candidates:
        raise SynthgapError(f"{title} has no {kind} (its columns: {columns}); name the {what} column with ?{what}=")
    raise SynthgapError(f"{title} has several {what} columns ({', '.join(candidates)}); choose one with ?{what}=NAME")


def _labels(title: str, splits: dict[str, Any], dataset: Any, label: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names and int64 labels: a ClassLabel's names and values, or sorted distinct strings of every split."""
    import datasets

    feature = dataset.features[label]
    column = dataset.data.table.column(label)
    if isinstance(feature, datasets.ClassLabel):
        labels = column.fill_null(-1).to_numpy().astype(np.int64)  # null: no label, like -1 (and no NaN to cast)
        classes = tuple(feature.names)
        _check_in_range(title, label, labels, len(classes))
    elif _is_string(feature):
        names = sorted(
            {
                value
                for split in splits.values()
                if label in split.column_names and _is_string(split.features[label])
                for value in split.data.table.column(label).unique().to_pylist()
                if value is not None
            }
        )
        where = {value: i for i, value in enumerate(names)}
        labels = np.array([where.get(value, -1) for value in column.to_pylist()], dtype=np.int64)
        classes = tuple(names)
    else:
        raise SynthgapError(
            f"{title}: column {label!r} is {feature}, not a class label or a string; name another with ?label="
        )
    missing = int((labels < 0).sum())
    if missing:
        raise SynthgapError(
            f"{title}: {missing} of {len(labels)} rows have no label in column {label!r}; use a labelled split"
        )
    return classes, labels


def _check_in_range(title: str, label: str, labels: np.ndarray, names: int) -> None:
    """A ClassLabel value is -1 (no label) or one of its names' positions: `datasets` does not check values cast
    from ints, and a value past the names would index no class."""
    bad = np.flatnonzero((labels < -1) | (labels >= names))
    if len(bad):
        more = f" (and {len(bad) - 1} more rows)" if len(bad) > 1 else ""
        raise SynthgapError(
            f"{title} row {bad[0]}: label {labels[bad[0]]} is out of range for column {label!r}, a ClassLabel of "
            f"{names} names (0 to {names - 1}){more}"
        )
