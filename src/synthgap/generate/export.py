"""`synthgap export OUT --to DIR`: a generated set as a Hugging Face dataset, ready to share.

DIR receives parquet shards (``data/train-00000-of-0000N.parquet``: the image bytes, the label as a ``ClassLabel``
in the generation's class order, and every scalar field of the manifest: prompt, seed, guidance, steps, ...) and a
dataset card (``README.md``: model and revision, prompts and templates, seeds, guidance, steps, images per class, a
licence to fill in), the layout ``huggingface_hub.upload_folder`` and ``load_dataset(DIR)`` expect. ``--push REPO``
uploads it when the hub is reachable. Steps:

1. check inputs: the set is finished, its files match their checksums and lie in their classes' folders; DIR is
   empty or an export of this set;
2. write each shard that is not already there into a staging folder (atomically: a killed export resumes at the
   first missing shard), then move the folder into place as ``data/``, so readers never see part of the set;
3. write the card last: a folder with its card is a complete export;
4. push, when asked.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthgap.data.generated import MANIFEST, read_generated_manifest
from synthgap.data.sources import open_source
from synthgap.errors import SynthgapError
from synthgap.generate.output import SETTINGS, check_class_folders, check_run_settings, metadata_row
from synthgap.generate.quiet import library_bars_off
from synthgap.hub import hub_offline
from synthgap.io import atomic_path, atomic_write_text, file_digest
from synthgap.progress import progress_bar

EXPORT = "export.json"
CARD = "README.md"
SHARDS = "data"
STAGING = ".data.partial"
ROW_GROUP = 100  # images per parquet row group


@dataclass(frozen=True)
class ExportConfig:
    generated: Path  # a `synthgap generate` (or `synthgap curate`) output folder
    to: Path
    images_per_shard: int = 1000
    push: str | None = None  # a Hub dataset repository id
    private: bool = False


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    images: int
    shards: list[Path]
    written: int  # shards written by this call (the others were already there)
    pushed: str | None

    def summary(self) -> str:
        shards = f"{len(self.shards)} parquet shard{'s' if len(self.shards) != 1 else ''}"
        lines = [
            f"exported {self.images} images in {shards} ({self.written} written now) to {self.folder}",
            f"dataset card: {self.folder / CARD}; read it back with hf:{self.folder}",
        ]
        if self.pushed:
            lines.append(f"pushed to {self.pushed}")
        return "\n".join(lines)


def export_generated(config: ExportConfig, progress: bool = True) -> ExportResult:
    """Write `config.generated` as parquet shards and a dataset card into `config.to` (see the module docstring)."""
    # 1. check inputs
    if config.images_per_shard < 1:
        raise SynthgapError(f"--images-per-shard must be at least 1, got {config.images_per_shard}")
    source = Path(config.generated).expanduser().resolve()
    index = open_source(f"generated:{source}", "train")  # checks the set is finished and its sha256s
    lines = read_generated_manifest(source)
    check_class_folders(source / MANIFEST, lines)  # a relabelled line would change the ClassLabel, not the folders
    records = [record for _, record in lines]
    out = Path(config.to).expanduser()
    _check_out(out, source)
    settings = {
        "source": str(source),
        "manifest_sha256": file_digest(source / MANIFEST),
        "images_per_shard": config.images_per_shard,
    }
    check_run_settings(out, EXPORT, "export", settings)
    # 2. the shards
    columns = column_types([metadata_row(r) for r in records])
    count = max(1, math.ceil(len(records) / config.images_per_shard))
    names = [f"train-{i:05d}-of-{count:05d}.parquet" for i in range(count)]
    staging = _staging(out)  # shards are written here; data/ appears only once every shard is in it
    bar = progress_bar(len(records), desc=f"export {source.name}", unit="img", enabled=progress)
    written = 0
    with library_bars_off("datasets", "huggingface_hub"):  # ours counts images; theirs would count their steps
        for number, name in enumerate(names):
            part = records[number * config.images_per_shard : (number + 1) * config.images_per_shard]
            if not _shard_done(staging / name, len(part)):
                _write_shard(staging / name, source, part, index.classes, columns)
                written += 1
            bar.update(len(part))
    bar.close()
    os.replace(staging, out / SHARDS)
    # 3. the card, last
    atomic_write_text(out / CARD, dataset_card(source, records, index.classes, count))
    shards = [out / SHARDS / name for name in names]
    # 4. push
    pushed = push_folder(out, config.push, private=config.private) if config.push else None
    return ExportResult(out, len(records), shards, written, pushed)


def _check_out(out: Path, source: Path) -> None:
    if out.resolve() == source or source in out.resolve().parents:
        raise SynthgapError(f"--to {out} lies inside the set it exports; choose a folder elsewhere")
    if out.exists() and not out.is_dir():
        raise SynthgapError(f"--to {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / EXPORT).exists():
        raise SynthgapError(f"--to {out} is not empty and holds no export; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)


# --- shards --------------------------------------------------------------------------------------------------------


def _staging(out: Path) -> Path:
    """The folder shards are written into: `data/` is where readers look (`data/train-*`), so it exists only
    complete; an export that stopped before its card goes back to staging to be finished."""
    staging = out / STAGING
    if (out / SHARDS).is_dir() and staging.exists():
        shutil.rmtree(out / SHARDS)  # an older complete copy beside unfinished work: the work wins
    elif (out / SHARDS).is_dir():
        os.replace(out / SHARDS, staging)  # its shards are checked one by one below; whole ones are kept
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def column_types(rows: list[dict[str, Any]]) -> dict[str, str]:
    """One Arrow type per metadata column over every row (so every shard has one schema): int64, float64, bool or
    string; a column mixing types, or all null, is stored as strings (JSON for non-strings)."""
    kinds: dict[str, set[type]] = {}
    for row in rows:
        for name, value in row.items():
            if name not in ("file_name", "label", "label_index"):
                kinds.setdefault(name, set()).update({type(value)} if value is not None else set())
    types = {}
    for name, seen in kinds.items():
        if seen == {bool}:
            types[name] = "bool"
        elif seen == {int}:
            types[name] = "int64"
        elif seen and seen <= {int, float}:
            types[name] = "float64"
        else:
            types[name] = "string"
    return types


def _cell(value: Any, kind: str) -> Any:
    if value is None or kind != "string" or isinstance(value, str):
        return float(value) if kind == "float64" and value is not None else value
    return json.dumps(value)


def _write_shard(
    shard: Path, source: Path, records: list[dict[str, Any]], classes: tuple[str, ...], columns: dict[str, str]
) -> None:
    """One parquet file, written in row groups of ROW_GROUP images: memory holds one group's images, not the
    shard's. The schema carries the features (the ClassLabel's names) as `datasets` writes them."""
    import datasets
    import pyarrow.parquet as pq

    features = {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=list(classes)),
        "file_name": datasets.Value("string"),
    }
    features.update({name: datasets.Value(kind) for name, kind in columns.items()})
    features = datasets.Features(features)
    where = {name: i for i, name in enumerate(classes)}
    with atomic_path(shard) as tmp:
        writer = None
        try:
            for start in range(0, len(records), ROW_GROUP):
                group = records[start : start + ROW_GROUP]
                rows = [metadata_row(r) for r in group]
                data: dict[str, list[Any]] = {
                    "image": [
                        {"bytes": (source / r["file"]).read_bytes(), "path": Path(r["file"]).name} for r in group
                    ],
                    "label": [where[r["class"]] for r in group],
                    "file_name": [row["file_name"] for row in rows],
                }
                for name, kind in columns.items():
                    data[name] = [_cell(row.get(name), kind) for row in rows]
                table = datasets.Dataset.from_dict(data, features=features).data.table
                if writer is None:
                    writer = pq.ParquetWriter(str(tmp), table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def _shard_done(shard: Path, rows: int) -> bool:
    """A shard already written whole (renamed into place only when complete; its footer still says how many rows)."""
    if not shard.is_file():
        return False
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(shard).metadata.num_rows == rows
    except (OSError, ValueError):
        return False


# --- the card ------------------------------------------------------------------------------------------------------


def dataset_card(source: Path, records: list[dict[str, Any]], classes: tuple[str, ...], shards: int) -> str:
    """The dataset card: YAML front matter for the Hub, then how the images were made and how to load them."""
    settings = _settings(source)
    counts = {name: 0 for name in classes}
    names: dict[str, str] = {}
    for record in records:
        counts[record["class"]] += 1
        names.setdefault(record["class"], str(record.get("class_name", record["class"])))
    kind = settings.get("kind", "generated")
    lines = [
        "---",
        "license: other  # fill in: the licence the generator's and the source images' terms allow",
        "task_categories:",
        "- image-classification",
        "tags:",
        "- synthetic",
        "- synthgap",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {SHARDS}/train-*",
        "---",
        "",
        f"# {source.name}",
        "",
        f"{len(records)} images of {len(classes)} classes made by `synthgap generate {kind}` "
        f"({shards} parquet shard{'s' if shards != 1 else ''}). Every row holds the image, its `label` (a ClassLabel "
        "in the generation's class order), the `prompt` and the `seed` it was made from, and the rest of its "
        "manifest line.",
        "",
        "## Generation",
        "",
        *_settings_lines(settings, records),
        "",
        "## Images per class",
        "",
        "| class | name | images |",
        "|---|---|---:|",
        *(f"| {_cell_text(cls)} | {_cell_text(names.get(cls, cls))} | {counts[cls]} |" for cls in classes),
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        'images = load_dataset("<this folder or repository>", split="train")',
        "```",
        "",
        "In synthgap, `hf:<this folder or repository>` is a data source like any other. For sets made from real "
        "images, the `source` column names each row's real image as a path on the machine that made the set.",
        "",
        "## Licence",
        "",
        "Fill in the licence above and here: the generator model's licence and, for sets made from real images "
        "(img2img, unCLIP, a LoRA), the licence of those images.",
        "",
    ]
    return "\n".join(lines)


def _settings(source: Path) -> dict[str, Any]:
    path = source / SETTINGS
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SynthgapError(f"corrupt {path}: not a JSON file") from None
    return settings if isinstance(settings, dict) else {}


CARD_SETTINGS = (
    ("model", "model"),
    ("revision", "revision"),
    ("resolved_revision", "resolved revision"),
    ("scheduler", "scheduler"),
    ("steps", "steps"),
    ("guidance", "guidance scale"),
    ("size", "size (px)"),
    ("seed", "base seed"),
    ("negative_prompt", "negative prompt"),
    ("source", "real images (source)"),
    ("strength", "strength"),
    ("variations", "variations per real image"),
    ("lora", "LoRA"),
    ("lora_sha256", "LoRA weights (sha256)"),
    ("lora_scale", "LoRA scale"),
    ("precision", "precision"),
)


def _settings_lines(settings: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    lines = [f"- {label}: `{settings[key]}`" for key, label in CARD_SETTINGS if settings.get(key) not in (None, "")]
    templates = settings.get("templates") or sorted({r["template"] for r in records if r.get("template")})
    if templates:
        lines.append("- prompt templates: " + ", ".join(f"`{t}`" for t in templates))
    seeds = [r["seed"] for r in records if isinstance(r.get("seed"), int)]
    if seeds:
        lines.append(
            "- seeds: one per image (column `seed`), derived from the base seed, the class id and the image's index"
        )
    if not lines:
        lines.append("- settings: see the columns of each row (no generate.json beside the set)")
    return lines


def _cell_text(text: str) -> str:
    """A class name safe in a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


# --- push ----------------------------------------------------------------------------------------------------------


def push_folder(folder: Path, repo: str, *, private: bool) -> str:
    """Upload the export to the Hub dataset repository `repo` (created when missing); its URL."""
    if hub_offline():
        raise SynthgapError(
            f"cannot push to {repo}: HF_HUB_OFFLINE is set; push from a machine that reaches the hub, or upload "
            f"{folder} there with huggingface_hub.upload_folder(repo_type='dataset')"
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True, private=private)
        commit = api.upload_folder(  # shards of an earlier push (another count) go: data/train-* must be this set
            folder_path=str(folder),
            repo_id=repo,
            repo_type="dataset",
            allow_patterns=[CARD, f"{SHARDS}/*"],
            delete_patterns=[f"{SHARDS}/*"],
        )
    except (OSError, HfHubHTTPError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SynthgapError(f"cannot push {folder} to {repo}: {reason}") from None
    return str(getattr(commit, "repo_url", repo))
