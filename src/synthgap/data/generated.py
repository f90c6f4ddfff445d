"""The ``generated`` source: the output folder of ``synthgap generate`` (an ImageFolder tree + ``manifest.jsonl``).

Reference: ``generated:/path/to/out``. Classes follow the manifest's class order (the class list the images were
generated from: for ImageNet-100 the sorted wnids, for CIFAR-10 the CIFAR order), so a generated set lines up with
the real source of the same classes. A class list in another order (a .txt not sorted like the real folder's class
names) gives the same classes in another order: sides are matched by class id with ``align_classes`` or
``open_source(..., classes=...)`` (data/index.py, data/sources.py), never by position. The split is ignored: a
generated set has only training images. The manifest exists only once every shard has finished, so an unfinished
run is refused rather than read half-way.

Every manifest line names a file inside the folder and the SHA-256 of its bytes. A file that resolves outside the
folder (``../x.png``, an absolute path, a symlink leading out) is refused, and each file's digest is checked when the
set is indexed, so a changed or swapped image is one error naming it rather than silently trained on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthgap.data.cachedir import default_cache_dir
from synthgap.data.describe import DESCRIBERS
from synthgap.data.index import LabelledIndex
from synthgap.data.sources import SOURCES, DataRef
from synthgap.errors import SynthgapError
from synthgap.io import HASH_THREADS, atomic_write_text, file_digest, file_version

MANIFEST = "manifest.jsonl"
SETTINGS = "generate.json"  # the run's settings (generate/output.py's SETTINGS; the data stage does not import it)
SHOW = 5  # values shown in a `data describe` line before "..."
VERIFIED = "verified"  # folder of the cache dir holding one empty marker per set whose digests matched
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ManifestEntry:
    """One image of a manifest: its line, its class, its path as listed (under the folder), the file it resolves to
    (inside the folder) and its expected digest."""

    line: int
    class_name: str
    path: Path
    resolved: Path
    sha256: str


def read_generated_manifest(root: Path) -> list[tuple[int, dict]]:
    """(line number, record) of each non-blank manifest line; a line that is not a JSON object with string `class`,
    `file` and `sha256` is one error naming the manifest and the line number."""
    path = root / MANIFEST
    if not root.is_dir():
        raise SynthgapError(f"no such folder: {root} (generated:DIR names a `synthgap generate` output folder)")
    if not path.is_file():
        raise SynthgapError(
            f"no {MANIFEST} in {root}: generation not finished or not a synthgap generate output "
            "(rerun the same `synthgap generate` command, every shard, to complete it)"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise SynthgapError(f"corrupt {path}: not a text (UTF-8) file") from None
    return [(number, _parse_line(path, number, line)) for number, line in enumerate(lines, start=1) if line.strip()]


def _parse_line(path: Path, number: int, line: str) -> dict:
    where = f"corrupt {path}, line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SynthgapError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    if not isinstance(record, dict):
        raise SynthgapError(f"{where}: expected a JSON object, got {type(record).__name__}")
    wrong = [key for key in ("class", "file", "sha256") if not isinstance(record.get(key), str) or not record[key]]
    if wrong:
        raise SynthgapError(f"{where}: {', '.join(wrong)} missing or not a non-empty string")
    if not HEX_DIGEST.fullmatch(record["sha256"]):
        raise SynthgapError(f"{where}: sha256 {record['sha256']!r} is not a SHA-256 hex digest")
    return record


def manifest_entries(root: Path) -> list[ManifestEntry]:
    """The manifest's images, each file resolved and checked to lie inside `root` (symlinks followed)."""
    folder = root.resolve()
    entries = []
    lines = read_generated_manifest(root)
    for number, record in lines:
        where = f"{root / MANIFEST}, line {number}: file {record['file']!r}"
        try:
            resolved = (folder / record["file"]).resolve()  # an absolute `file` replaces the folder: caught below
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte in the name
            raise SynthgapError(f"{where} cannot be resolved: {exc}") from None
        if not resolved.is_relative_to(folder) or resolved == folder:
            raise SynthgapError(f"{where} lies outside {root}; a generated set only reads images inside its own folder")
        entries.append(ManifestEntry(number, record["class"], root / record["file"], resolved, record["sha256"]))
    # a line relabelled by hand disagrees with the folder its image lies in: refused by every reader (after the
    # checks above, so a file outside the set gets its own message). Imported here: generate/ imports this module.
    from synthgap.generate.output import check_class_folders

    check_class_folders(root / MANIFEST, list(lines))
    return entries


def verify_digests(manifest: Path, entries: list[ManifestEntry]) -> None:
    """Check every file's bytes against its manifest digest, once per version of the files.

    Hashing a paper-scale set reads tens of GB, too much for every `open_source`. The check is remembered as the
    decoded cache remembers its keys (by each file's stat identity, `data/cache.py`): an empty
    marker file in the cache dir named by a hash of every (resolved path, `file_version`, expected digest). Any
    change to a file (or to the manifest's digests) names another marker, so that set is hashed again.
    """
    stats = [_file_stat(entry.resolved) for entry in entries]
    missing = [entry.path for entry, st in zip(entries, stats, strict=True) if st is None]
    if missing:
        raise SynthgapError(f"{len(missing)} images listed in {manifest} are missing, e.g. {missing[0]}")
    key = hashlib.sha256()
    for entry, st in zip(entries, stats, strict=True):
        key.update(f"{entry.resolved}\0{file_version(st)}\0{entry.sha256}\n".encode())
    marker = default_cache_dir() / VERIFIED / key.hexdigest()[:32]
    if marker.exists():
        return
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        digests = list(pool.map(lambda entry: file_digest(entry.resolved), entries))
    bad = [entry for entry, digest in zip(entries, digests, strict=True) if digest != entry.sha256]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise SynthgapError(
            f"image {bad[0].path} does not match its sha256 in {manifest}, line {bad[0].line}{more}: the file was "
            "changed or replaced after generation; restore it or generate the set again"
        )
    with contextlib.suppress(OSError):  # a read-only cache dir only means hashing again next time
        atomic_write_text(marker, "")


def _file_stat(path: Path) -> os.stat_result | None:
    """The stat of a regular file; None when `path` is missing or not a file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


@SOURCES.register("generated")
def open_generated(path: str, split: str, data_root: Path | None) -> LabelledIndex:
    """Index the images listed in ``<path>/manifest.jsonl`` (`split` and `data_root` are unused)."""
    root = Path(path).expanduser()
    entries = manifest_entries(root)
    if not entries:
        raise SynthgapError(f"{root / MANIFEST} lists no images")
    verify_digests(root / MANIFEST, entries)
    classes: dict[str, int] = {}
    for entry in entries:  # first appearance order = the generation's class order
        classes.setdefault(entry.class_name, len(classes))
    return LabelledIndex.of_files(
        name=f"generated:{root}",
        root=root,
        layout="generated",
        classes=tuple(classes),
        paths=tuple(entry.path for entry in entries),
        labels=np.array([classes[entry.class_name] for entry in entries], dtype=np.int64),
    )


# --- data describe --------------------------------------------------------------------------------------------------


@DESCRIBERS.register("generated")
def describe_generated(ref: DataRef, data_root: Path | None) -> tuple[str, list[LabelledIndex]]:
    """For `synthgap data describe generated:DIR` (or DIR): how the set was made (generator, model, sampling,
    prompts and templates, from the manifest and generate.json) and its index, whose class counts are the
    manifest's."""
    root = Path(ref.argument).expanduser()
    index = open_generated(ref.argument, "train", data_root)  # the checks a spec's side gets: finished, digests
    records = [record for _, record in read_generated_manifest(root)]
    settings = _read_settings(root)
    kind = settings.get("kind")
    made_by = "synthgap curate" if kind == "curate" else f"synthgap generate {kind}" if kind else "no generate.json"
    head = [f"layout: generated set ({made_by}, {root})"]
    head += _model_lines(records, settings)
    prompts = _distinct(records, "prompt")
    if prompts:
        head.append(f"prompts: {len(prompts)} distinct over {len(records)} images, e.g. {prompts[0]!r}")
    listed = settings.get("templates") if kind != "curate" else None  # curate's templates are CLIP's, not prompts'
    templates = _distinct(records, "template") or (listed if isinstance(listed, list) else [])
    if templates:
        head.append(f"templates: {_shown(templates)}")
    if kind == "curate":
        head.append(
            f"curated from: {settings.get('source')} (CLIP {settings.get('clip_model')}, {settings.get('rule')})"
        )
    names = {record["class"]: str(record.get("class_name", record["class"])) for record in records}
    if any(name != class_id for class_id, name in names.items()):
        head.append("class names: " + _shown([f"{class_id} {name}" for class_id, name in names.items()], quote=False))
    return "\n".join(head), [index]


def _read_settings(root: Path) -> dict:
    """generate.json, or {} when it is missing or unreadable: the manifest alone is the set (`open_generated`)."""
    try:
        settings = json.loads((root / SETTINGS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _model_lines(records: list[dict], settings: dict) -> list[str]:
    """The model (and its revision) and the sampler's settings: the manifest's values, else generate.json's."""
    values = {
        key: _distinct(records, key) or ([settings[key]] if settings.get(key) is not None else [])
        for key in ("model", "revision", "scheduler", "steps", "guidance", "size")
    }
    lines = []
    if values["model"]:
        revision = f" (revision {_shown(values['revision'], quote=False)})" if values["revision"] else ""
        lines.append(f"model: {_shown(values['model'], quote=False)}{revision}")
    sampling = [
        f"{key} {_shown(values[key], quote=False)}" for key in ("scheduler", "steps", "guidance", "size") if values[key]
    ]
    if sampling:
        lines.append("sampling: " + ", ".join(sampling))
    return lines


def _distinct(records: list[dict], key: str) -> list:
    """The distinct values of a manifest field, in first-appearance order (None and "" left out)."""
    seen: dict = {}
    for record in records:
        value = record.get(key)
        if value is not None and value != "" and not isinstance(value, dict | list):
            seen.setdefault(value, None)
    return list(seen)


def _shown(values: list, *, quote: bool = True) -> str:
    shown = [repr(v) if quote else str(v) for v in values[:SHOW]]
    return ", ".join(shown) + (f", ... ({len(values)} in all)" if len(values) > SHOW else "")
