"""The output folder of a generation run: crash-safe image writes, per-shard manifest parts, the merged manifest.

Layout::

    <out>/generate.json                 settings that determine the images (a rerun must match them)
    <out>/<folder>/<folder>_00000.png   images (ImageFolder tree); an image is done once renamed into place
    <out>/manifest.parts/<i>-of-<n>.jsonl  one line per image written by shard i/n, appended as it goes
    <out>/metadata.jsonl                the same lines for `datasets.load_dataset("imagefolder", data_dir=out)`
    <out>/manifest.jsonl                all images sorted by (class, index), written once every image exists (last)
    <out>/previews/<folder>.png         a grid of each class's first images

A kill can leave at most a torn last line in a part (dropped on resume) and a done image without its line (the line
is rebuilt from the image's deterministic description plus the file's sha256). Nothing is ever lost or duplicated.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthgap.errors import SynthgapError
from synthgap.generate.classes import sanitise
from synthgap.generate.plan import Item, Shard
from synthgap.io import atomic_write_bytes, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from PIL import Image

MANIFEST = "manifest.jsonl"
METADATA = "metadata.jsonl"  # the same lines for `datasets` (imagefolder)
PARTS = "manifest.parts"
SETTINGS = "generate.json"
PREVIEWS = "previews"
PREVIEW_IMAGES = 16

Describe = Callable[[Item], dict[str, Any]]


class OutputFolder:
    """Writes one shard's images and manifest lines; merges the manifest when the whole run is done."""

    def __init__(self, root: Path, shard: Shard) -> None:
        self.root = Path(root)
        self.shard = shard
        self.part = self.root / PARTS / f"{shard.name}.jsonl"
        self._part_file: io.TextIOWrapper | None = None

    # -- starting --------------------------------------------------------------------------------------------------

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Record the settings on first use; on a rerun (or another shard) they must be the same."""
        check_run_settings(self.root, SETTINGS, str(settings.get("kind", "generate")), settings)

    def open_part(self) -> dict[str, dict[str, Any]]:
        """Lock this shard's part, drop a torn last line, and return its records by file."""
        self.part.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.part, "a+", encoding="utf-8")  # noqa: SIM115  (held until close())
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SynthgapError(f"another process is generating shard {self.shard} into {self.root}") from None
        handle.seek(0)
        text = handle.read()
        records = _parse_lines(text)
        clean = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records.values())
        if clean != text:  # torn or duplicated lines: rewrite before appending (atomic; the lock is on the old inode)
            atomic_write_text(self.part, clean)
            handle.close()
            handle = open(self.part, "a", encoding="utf-8")  # noqa: SIM115
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._part_file = handle
        return records

    def is_done(self, item: Item) -> bool:
        return (self.root / item.file).exists()

    # -- writing ---------------------------------------------------------------------------------------------------

    def write(self, item: Item, image: Image.Image, description: dict[str, Any]) -> dict[str, Any]:
        """Write the PNG atomically, then append its manifest line; returns the line's record."""
        data = encode_png(image)
        atomic_write_bytes(self.root / item.file, data)
        record = {**description, "file": item.file, "sha256": hashlib.sha256(data).hexdigest()}
        assert self._part_file is not None, "open_part() first"
        self._part_file.write(json.dumps(record, sort_keys=True) + "\n")
        self._part_file.flush()  # survives a kill of this process (the OS holds the data)
        return record

    def close(self) -> None:
        if self._part_file is not None:
            self._part_file.close()
            self._part_file = None

    # -- finishing -------------------------------------------------------------------------------------------------

    def finish(self, items: list[Item], describe: Describe, previews: bool) -> Path | None:
        """If every image of the run exists, write manifest.jsonl (and previews); else None (other shards pending).

        Any shard may be the last to finish, so each one tries; concurrent merges write identical files atomically.
        """
        if not all(self.is_done(item) for item in items):
            return None
        known: dict[str, dict[str, Any]] = {}
        for part in sorted((self.root / PARTS).glob("*.jsonl")):
            known.update(_parse_lines(part.read_text(encoding="utf-8")))
        records = [known.get(item.file) or self.rebuild(item, describe) for item in items]  # (class, index) order
        manifest = write_manifest(self.root, records)
        if previews:
            self.write_previews(items)
        self._remove_temp_files(items)
        return manifest

    def rebuild(self, item: Item, describe: Describe) -> dict[str, Any]:
        """The manifest line of a done image whose line was lost in a kill: the description is deterministic."""
        digest = hashlib.sha256((self.root / item.file).read_bytes()).hexdigest()
        return {**describe(item), "file": item.file, "sha256": digest}

    def write_previews(self, items: list[Item]) -> None:
        by_folder: dict[str, list[Item]] = {}
        for item in items:
            by_folder.setdefault(item.cls.folder, []).append(item)
        for folder, class_items in by_folder.items():
            from PIL import Image

            images = [Image.open(self.root / item.file) for item in class_items[:PREVIEW_IMAGES]]
            atomic_write_bytes(self.root / PREVIEWS / f"{folder}.png", encode_png(preview_grid(images)))

    def _remove_temp_files(self, items: list[Item]) -> None:
        """Temp files of writes cut by a kill. Once every image exists no writer is left: each shard writes only its
        own missing images, and a shard cannot run twice at once (the part's lock)."""
        for folder in {item.cls.folder for item in items}:
            for tmp in (self.root / folder).glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


RUN_FILES = {
    SETTINGS: "a `synthgap generate` run",
    "adapt.json": "a `synthgap generate adapt` run",
    "results.jsonl": "an experiment",
    "export.json": "a `synthgap export` of a generated set",
}


def check_run_settings(root: Path, file: str, kind: str, settings: dict[str, Any]) -> None:
    """Record a run's settings in `root/file` on first use; a rerun into `root` must have the same ones.

    A folder holding another kind of run (another settings file, or the same file with another `kind`) is refused,
    and so is a rerun with other settings, naming what differs."""
    root = Path(root)
    for other, what in RUN_FILES.items():
        if other != file and (root / other).exists():
            raise SynthgapError(f"{root} holds {what}; choose another --out for this {kind} run")
    path = root / file
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SynthgapError(f"corrupt {path}: not a JSON file; choose another --out") from None
        new = json.loads(json.dumps({"kind": kind, **settings}))  # normalise tuples → lists as stored
        if old.get("kind", kind) != kind:
            raise SynthgapError(f"{root} holds a {old.get('kind')} run, not a {kind} run; choose another --out")
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if changed:
            shown = "; ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in changed[:4])
            raise SynthgapError(
                f"{root} holds a {kind} run with other settings ({shown}); rerun with the same settings to resume, "
                "or choose another --out"
            )
        return
    atomic_write_json(path, {"kind": kind, **settings})


def metadata_row(record: dict[str, Any]) -> dict[str, Any]:
    """A manifest line as a row of `datasets`' imagefolder metadata: `file_name`, `label` (the class id), then every
    other field whose value is a plain scalar (prompt, seed, guidance, ...); the manifest's integer label is kept as
    `label_index`."""
    row: dict[str, Any] = {"file_name": record["file"], "label": record["class"], "label_index": record.get("label")}
    for name, value in record.items():
        if name not in ("file", "class", "label") and (value is None or isinstance(value, str | int | float | bool)):
            row[name] = value
    return row


def write_manifest(root: Path, records: list[dict[str, Any]]) -> Path:
    """`metadata.jsonl`, then `manifest.jsonl` (last: it marks a generated set finished), one line per image."""
    write_metadata(root, records)
    manifest = root / MANIFEST
    atomic_write_text(manifest, "".join(json.dumps(record, sort_keys=True) + "\n" for record in records))
    return manifest


def write_metadata(root: Path, records: list[dict[str, Any]]) -> None:
    """`metadata.jsonl` beside the manifest, so ``datasets.load_dataset("imagefolder", data_dir=root)`` reads the set
    with its prompts and seeds (the previews are not listed, so they are not read as data)."""
    atomic_write_text(root / METADATA, "".join(json.dumps(metadata_row(r), sort_keys=True) + "\n" for r in records))


def check_class_folders(manifest: Path, records: list[tuple[int, dict[str, Any]]]) -> None:
    """Every image of a generated set lies in the folder of its manifest class, and each class in one folder.

    `records` are (line number, record) of `manifest`. A line relabelled by hand would otherwise reach an export as
    another class (and change its ClassLabel order) while `metadata.jsonl` and the class folders keep the old one.
    A class folder is named for its class id as `unique_folders` names it: the sanitised id, or the sanitised id
    with `_2`, `_3`, ... after a collision. An image outside any folder has no folder to disagree with."""
    by_folder: dict[str, list[tuple[int, str, str]]] = {}  # folder → (line, file, class) of its images
    for number, record in records:
        parts = Path(os.path.normpath(record["file"])).parts
        if len(parts) > 1:
            by_folder.setdefault(parts[0], []).append((number, record["file"], record["class"]))
    home: dict[str, str] = {}  # class → its folder
    fix = "the manifest disagrees with the set's folders (edited by hand?): restore it or generate the set again"
    for folder, images in by_folder.items():
        owner = _folder_owner(folder, [cls for _, _, cls in images])
        if owner is None:  # a whole folder relabelled to a class it is not named for
            number, file, cls = images[0]
            raise SynthgapError(
                f"{manifest}, line {number}: {file} has class {cls!r}, but lies in {folder}/, "
                f"which is not a folder of class {cls!r}; {fix}"
            )
        for number, file, cls in images:
            if cls != owner:
                raise SynthgapError(
                    f"{manifest}, line {number}: {file} has class {cls!r}, but lies in {folder}/, "
                    f"the folder of class {owner!r}; {fix}"
                )
        if home.setdefault(owner, folder) != folder:
            raise SynthgapError(
                f"{manifest}, line {images[0][0]}: {images[0][1]} has class {owner!r}, but lies in "
                f"{folder}/, while other images of {owner!r} lie in {home[owner]}/; {fix}"
            )


def _folder_owner(folder: str, classes: list[str]) -> str | None:
    """The class a folder was made for: of the classes of its images, the most frequent one it is named for."""
    named = [cls for cls in classes if _named_for(folder, cls)]
    return Counter(named).most_common(1)[0][0] if named else None


def _named_for(folder: str, class_id: str) -> bool:
    base = re.escape(sanitise(class_id).casefold())
    return re.fullmatch(rf"{base}(_[0-9]+)?", folder.casefold()) is not None


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes (deterministic for the same pixels: same encoder settings every time)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def preview_grid(images: list[Image.Image], thumb: int = 128) -> Image.Image:
    """Images as thumbnails (at most `thumb` px a side) on a near-square grid."""
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    side = min(thumb, max(max(im.size) for im in images))
    from PIL import Image

    grid = Image.new("RGB", (columns * side, rows * side), "white")
    for position, image in enumerate(images):
        tile = image.convert("RGB").resize((side, side))
        grid.paste(tile, ((position % columns) * side, (position // columns) * side))
    return grid


def _parse_lines(text: str) -> dict[str, dict[str, Any]]:
    """Records by file; a line that does not parse (torn by a kill) is dropped, a repeated file keeps its first."""
    records: dict[str, dict[str, Any]] = {}
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # torn last line
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "file" in record:
            records.setdefault(record["file"], record)
    return records
