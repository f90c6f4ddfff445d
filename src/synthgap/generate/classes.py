"""Class lists for generation: ImageNet-100, CIFAR-10, or any list from a file.

A class has an `id` (its label in the manifest and in the ``generated`` data source, so a generated set lines up with
the real source of the same classes: WordNet ids for ImageNet-100, names for CIFAR-10), a display `name` used in
prompts (made unique), synonyms, free extra fields (``hypernym``, ``definition``, ``background``, ...), and a `folder`
name (the id made safe for a path). A class listed twice in a file is an error naming its lines; different classes
that share a name (ImageNet's two cranes) are told apart by synonym or id.

Files: ``.txt`` (one name per line, ``#`` comments), ``.csv`` (a header with a ``name`` column; optional ``id``,
``synonyms`` separated by ``;``, any other column becomes an extra field), ``.json`` (a list of strings or of objects
with ``name``; optional ``id``/``wnid``, ``synonyms`` list, other keys are extra fields).
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from synthgap.errors import SynthgapError

BUILTIN_LISTS = ("imagenet100", "cifar10")
RESERVED_FOLDERS = frozenset({"previews", "manifest.parts"})  # output entries that must not be class folders
MAX_FOLDER_CHARS = 80


@dataclass(frozen=True)
class ClassInfo:
    """One class to generate. `fields` holds the extra prompt fields (hypernym, definition, background, ...)."""

    id: str
    name: str
    synonyms: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    folder: str = ""


def load_classes(spec: str | Path) -> list[ClassInfo]:
    """The class list named by `spec`: ``imagenet100``, ``cifar10``, or a .txt/.csv/.json file."""
    text = str(spec)
    origins = None
    if text == "imagenet100":
        raw = _imagenet100_entries()
    elif text == "cifar10":
        from synthgap.data.sources import CIFAR10_CLASSES

        raw = [{"name": name} for name in CIFAR10_CLASSES]
    else:
        raw, origins = _read_class_file(Path(text).expanduser())
    return finish_classes(raw, where=text, origins=origins)


def finish_classes(raw: list[dict], *, where: str, origins: list[str] | None = None) -> list[ClassInfo]:
    """Entries (dicts with name, optional id/synonyms/extra keys) → classes with unique names, ids and folders.

    `origins` says where each entry was written ("line 3", "item 2") for error messages.
    """
    if not raw:
        raise SynthgapError(f"empty class list: {where} names no classes")
    check_no_repeats(raw, where=where, origins=origins or [f"item {i}" for i in range(1, len(raw) + 1)])
    names = disambiguate_names(raw)
    ids = [str(entry.get("id") or name) for entry, name in zip(raw, names, strict=True)]
    duplicate_ids = sorted({i for i in ids if ids.count(i) > 1})
    if duplicate_ids:
        raise SynthgapError(f"class list {where}: duplicate class ids {duplicate_ids}")
    folders = unique_folders(ids)
    return [
        ClassInfo(id=class_id, name=name, synonyms=_synonyms(entry), fields=_extra_fields(entry), folder=folder)
        for entry, name, class_id, folder in zip(raw, names, ids, folders, strict=True)
    ]


def check_no_repeats(raw: list[dict], *, where: str, origins: list[str]) -> None:
    """A class written twice is an error naming it and where: the same name (ignoring case), the same id (or none)
    and the same synonyms. Different classes sharing a name (ImageNet's two cranes, with different ids or synonyms)
    are kept and told apart by `disambiguate_names`."""
    places: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    first_name: dict[tuple[str, str, tuple[str, ...]], str] = {}
    for entry, origin in zip(raw, origins, strict=True):
        name = str(entry["name"]).strip()
        key = (name.casefold(), str(entry.get("id") or ""), tuple(sorted(s.casefold() for s in _synonyms(entry))))
        places.setdefault(key, []).append(origin)
        first_name.setdefault(key, name)
    repeats = [
        f"{first_name[key]!r} is listed more than once ({_places(at)})" for key, at in places.items() if len(at) > 1
    ]
    if repeats:
        raise SynthgapError(f"class list {where}: {'; '.join(repeats)}; keep one line per class")


def _places(origins: list[str]) -> str:
    """ "line 2", "line 5" → "lines 2, 5"."""
    kind = origins[0].split()[0]
    return f"{kind}s " + ", ".join(origin.split()[1] for origin in origins)


def disambiguate_names(raw: list[dict]) -> list[str]:
    """Display names, unique ignoring case. Every member of a group sharing a name gets its first distinguishing
    synonym, else its id, e.g. ``crane (bird)`` / ``crane (n03126707)``, so no prompt is ambiguous (a name that
    still collides gets a number). Plain repeats of one class are refused earlier by `check_no_repeats`."""
    plain = [str(entry["name"]).strip() for entry in raw]
    keys = [name.casefold() for name in plain]
    taken = {key for key in keys if keys.count(key) == 1}
    names: list[str] = []
    for entry, name in zip(raw, plain, strict=True):
        if keys.count(name.casefold()) == 1:
            names.append(name)
            continue
        candidates = [f"{name} ({s})" for s in _synonyms(entry) if s.casefold() != name.casefold()]
        candidates += [f"{name} ({entry['id']})"] if entry.get("id") else [name]
        candidates += [f"{name} ({k})" for k in range(2, len(raw) + 2)]
        chosen = next(c for c in candidates if c.casefold() not in taken)
        taken.add(chosen.casefold())
        names.append(chosen)
    return names


def sanitise(name: str) -> str:
    """A safe single path component: ASCII letters, digits, ``._-``; no leading dot; at most 80 characters."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._-")[:MAX_FOLDER_CHARS].rstrip("._-")
    return safe or "class"


def unique_folders(ids: list[str]) -> list[str]:
    """Sanitised folder names, unique even on case-insensitive file systems (later collisions get ``_2``, ...)."""
    taken = {name.casefold() for name in RESERVED_FOLDERS}
    folders = []
    for class_id in ids:
        base = sanitise(class_id)
        folder, k = base, 2
        while folder.casefold() in taken:
            folder, k = f"{base}_{k}", k + 1
        taken.add(folder.casefold())
        folders.append(folder)
    return folders


def _synonyms(entry: dict) -> tuple[str, ...]:
    value = entry.get("synonyms") or ()
    if isinstance(value, str):
        value = value.split(";")
    return tuple(s.strip() for s in value if str(s).strip())


def _extra_fields(entry: dict) -> dict[str, str]:
    return {
        str(k): str(v).strip()
        for k, v in entry.items()
        if k not in ("id", "wnid", "name", "synonyms") and v is not None and str(v).strip()
    }


def _imagenet100_entries() -> list[dict]:
    from synthgap.data.imagenet100 import load_imagenet100_classes

    # sorted by wnid: the order of the imagenet100 data source, so generated labels match the real ones
    entries = sorted(load_imagenet100_classes(), key=lambda e: e["wnid"])
    return [{"id": e["wnid"], "name": e["name"], "synonyms": e.get("synonyms", [])} for e in entries]


def _read_class_file(path: Path) -> tuple[list[dict], list[str]]:
    """Entries and where each was written ("line 3" for .txt/.csv, "item 2" for .json, counted from 1)."""
    if not path.is_file():
        raise SynthgapError(
            f"class list not found: {path} (use imagenet100, cifar10, or a .txt/.csv/.json file of class names)"
        )
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _from_csv(text, path)
    if suffix == ".json":
        entries = _from_json(text, path)
        return entries, [f"item {i}" for i in range(1, len(entries) + 1)]
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
    kept = [(number, line) for number, line in lines if line and not line.startswith("#")]
    return [{"name": line} for _, line in kept], [f"line {number}" for number, _ in kept]


def _from_csv(text: str, path: Path) -> tuple[list[dict], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    if "name" not in (reader.fieldnames or []):
        raise SynthgapError(f"class list {path}: the CSV header needs a 'name' column, got {reader.fieldnames}")
    rows, origins = [], []
    for row in reader:
        if not (row.get("name") or "").strip():
            raise SynthgapError(f"class list {path}, line {reader.line_num}: empty name")
        rows.append(dict(row))
        origins.append(f"line {reader.line_num}")
    return rows, origins


def _from_json(text: str, path: Path) -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SynthgapError(f"class list {path}: invalid JSON ({exc})") from None
    if not isinstance(data, list):
        raise SynthgapError(f"class list {path}: expected a JSON list of names or of objects with 'name'")
    entries = []
    for position, item in enumerate(data):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not str(item.get("name") or "").strip():
            raise SynthgapError(f"class list {path}: item {position + 1} has no 'name': {item!r}")
        entries.append({**item, "id": item.get("id") or item.get("wnid")})
    return entries
