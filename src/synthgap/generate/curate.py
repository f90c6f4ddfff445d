"""CLIP-scored curation of a generated set: keep the images a zero-shot CLIP finds to show their own class.

    synthgap curate gen --clip-model openai/clip-vit-base-patch32 --rule confidence --out gen-curated

Each class's text embedding is the mean of its templates' normalised CLIP text embeddings (renormalised); an image's
score is the softmax probability of its own class over all classes. Rules:

- ``confidence``: keep an image whose score is above 1/C (He et al., "Is synthetic data from generative models ready
  for image recognition?", ICLR 2023);
- ``agreement``: keep an image whose top CLIP class is its own class (DISEF);
- ``top:K``: keep the K highest-scoring images of each class (ties by manifest order).

The output is a generated set like any other (``generated:OUT``): the kept files at the same relative paths (hard
links where the file system allows, copies otherwise), their manifest lines plus ``clip_score``, ``clip_top_class``
and ``clip_rule``, a ``generate.json`` of ``kind: curate``, ``kept.csv`` per class and ``clip_scores.csv`` for every
source image (``file,class,score,top_class,kept``). The manifest is written last, so a killed run is never taken
for a finished one; rerun the same command to finish it.

``clip_scores.csv`` is also an input: the curation experiment's `clip` score reads it (`read_clip_scores`, beside
its writer here, so that both follow one definition of the columns).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthgap.data.generated import MANIFEST, ManifestEntry, manifest_entries, read_generated_manifest, verify_digests
from synthgap.errors import SynthgapError, warn
from synthgap.generate.models import PICKLE_SUFFIXES
from synthgap.generate.output import SETTINGS, check_class_folders, check_run_settings, write_manifest
from synthgap.generate.prompts import fill_template, template_fields
from synthgap.generate.quiet import library_bars_off
from synthgap.hub import hub_unavailable_message, snapshot_folder
from synthgap.io import atomic_path, atomic_write_text, file_digest
from synthgap.progress import progress_bar

DEFAULT_CURATE_TEMPLATES = ("a photo of a {name}.",)
CLIP_FILES = ("*.json", "*.safetensors", "*.txt")  # config, tokenizer, processor, weights: never pickle files
SCORES = "clip_scores.csv"
KEPT = "kept.csv"
FILE_COLUMN = "file"  # the image's path as the source manifest lists it: relative to the scored set
SCORE_COLUMN = "score"  # CLIP's probability of the image's own class
SCORE_COLUMNS = (FILE_COLUMN, "class", SCORE_COLUMN, "top_class", "kept")  # clip_scores.csv's columns, in order


@dataclass(frozen=True)
class Rule:
    """A parsed --rule: `confidence`, `agreement` or `top:K` (`k` set)."""

    name: str
    k: int | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        text = text.strip()
        if text in ("confidence", "agreement"):
            return cls(text)
        if text.startswith("top:"):
            value = text.removeprefix("top:")
            if value.isdigit() and int(value) >= 1:
                return cls("top", int(value))
            raise SynthgapError(f"bad rule {text!r}: top:K needs a whole number K ≥ 1, e.g. top:500")
        raise SynthgapError(f"unknown rule {text!r}; choose from: confidence, agreement, top:K (e.g. top:500)")

    def __str__(self) -> str:
        return f"top:{self.k}" if self.name == "top" else self.name

    def keep(self, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Which images to keep, from their class probabilities (N × C) and own-class labels (N)."""
        scores = probs[np.arange(len(labels)), labels]
        if self.name == "confidence":
            return scores > 1.0 / probs.shape[1]
        if self.name == "agreement":
            return probs.argmax(axis=1) == labels
        keep = np.zeros(len(labels), dtype=bool)
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)  # manifest order
            best = members[np.argsort(-scores[members], kind="stable")[: self.k]]  # stable: ties by manifest order
            keep[best] = True
        return keep


@dataclass(frozen=True)
class CurateConfig:
    """What `synthgap curate` needs: the generated set, the CLIP model, the rule and the output folder."""

    generated: Path
    clip_model: str
    rule: str
    out: Path
    templates: tuple[str, ...] = DEFAULT_CURATE_TEMPLATES
    batch_size: int = 64

    def check_inputs(self) -> Rule:
        """Everything that can be checked before reading a file; returns the parsed rule."""
        rule = Rule.parse(self.rule)
        if self.batch_size < 1:
            raise SynthgapError(f"batch size must be ≥ 1, got {self.batch_size}")
        if not self.templates:
            raise SynthgapError("give at least one --template, e.g. 'a photo of a {name}.'")
        for template in self.templates:
            if template_fields(template) != ["name"]:
                raise SynthgapError(f"bad template {template!r}: it must use the field {{name}} once and no other")
        if Path(self.out).resolve() == Path(self.generated).resolve():
            raise SynthgapError(f"--out {self.out} is the generated set itself; choose another folder")
        return rule


@dataclass(frozen=True)
class ClassCount:
    id: str
    name: str
    images: int
    kept: int

    @property
    def fraction(self) -> float:
        return self.kept / self.images if self.images else 0.0


@dataclass(frozen=True)
class CurateResult:
    """What one `synthgap curate` call did."""

    out: Path
    manifest: Path
    rule: str
    classes: tuple[ClassCount, ...]
    linked: int  # kept files that are hard links of the source's
    copied: int  # kept files copied (a file system without hard links, or another device)
    seconds: float

    @property
    def images(self) -> int:
        return sum(c.images for c in self.classes)

    @property
    def kept(self) -> int:
        return sum(c.kept for c in self.classes)

    def table(self) -> str:
        width = max(len("class"), *(len(c.name) for c in self.classes))
        lines = [f"{'class':<{width}}  {'images':>7}  {'kept':>7}  {'%':>6}"]
        lines += [f"{c.name:<{width}}  {c.images:>7}  {c.kept:>7}  {100 * c.fraction:>6.1f}" for c in self.classes]
        lines.append(f"{'total':<{width}}  {self.images:>7}  {self.kept:>7}  {100 * self.kept / self.images:>6.1f}")
        return "\n".join(lines)

    def summary(self) -> str:
        lines = [self.table()]
        how = f"{self.linked} hard links" + (f", {self.copied} copies" if self.copied else "")
        lines.append(
            f"rule {self.rule}: kept {self.kept} of {self.images} images ({how}, {self.seconds:.0f} s); "
            f"manifest {self.manifest}"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class ClipFolder:
    """A local CLIP model folder and the digest of its weights (one file's, or a digest over sharded files')."""

    model: str
    path: Path
    weights_sha256: str


def curate_generated(config: CurateConfig, progress: bool = True) -> CurateResult:
    """Score every image of a generated set with zero-shot CLIP and write the images the rule keeps as a new set."""
    start = time.perf_counter()
    # 1. check inputs
    rule = config.check_inputs()
    source, out = Path(config.generated).expanduser(), Path(config.out).expanduser()
    # 2. read the source set (files inside it, digests checked)
    entries, records, classes = _read_source(source)
    # 3. find the CLIP model (safetensors only) and record the settings (a rerun must match them)
    clip = resolve_clip(config.clip_model)
    settings = {
        "source": str(source.resolve()),
        "source_manifest_sha256": file_digest(source / MANIFEST),
        "clip_model": config.clip_model,
        "clip_weights_sha256": clip.weights_sha256,
        "rule": str(rule),
        "templates": list(config.templates),
        "classes": [list(pair) for pair in classes],
    }
    check_run_settings(out, SETTINGS, "curate", settings)
    # 4. score
    ids = [class_id for class_id, _ in classes]
    labels = np.array([ids.index(entry.class_name) for entry in entries], dtype=np.int64)
    probs = clip_probabilities(
        clip,
        [e.resolved for e in entries],
        [name for _, name in classes],
        config.templates,
        batch_size=config.batch_size,
        progress=progress,
    )
    keep = rule.keep(probs, labels)
    scores, tops = probs[np.arange(len(labels)), labels], probs.argmax(axis=1)
    _write_scores(out / SCORES, records, [ids[t] for t in tops], scores, keep)
    if not keep.any():
        raise SynthgapError(f"rule {rule} keeps none of the {len(entries)} images of {source}; nothing written")
    # 5. the kept files, the per-class counts, then the manifest (last: it marks the run finished)
    linked = copied = 0
    kept = []
    for i in np.flatnonzero(keep):
        record = records[i]
        if place_file(entries[i].resolved, out / record["file"], record["sha256"]):
            linked += 1
        else:
            copied += 1
        extra = {"clip_score": float(scores[i]), "clip_top_class": ids[tops[i]], "clip_rule": str(rule)}
        kept.append({**record, **extra})
    counts = tuple(
        ClassCount(class_id, name, int((labels == c).sum()), int(keep[labels == c].sum()))
        for c, (class_id, name) in enumerate(classes)
    )
    _write_kept(out / KEPT, counts)
    write_manifest(out, kept)
    _remove_temp_files(out, kept)
    empty = [c.name for c in counts if c.kept == 0]
    if empty:
        warn(f"{len(empty)} classes kept no image: {', '.join(empty)}")
    return CurateResult(out, out / MANIFEST, str(rule), counts, linked, copied, time.perf_counter() - start)


def _read_source(source: Path) -> tuple[list[ManifestEntry], list[dict[str, Any]], list[tuple[str, str]]]:
    """The source's entries (files checked inside it and against their digests), their manifest records (same
    order), and its classes as (id, prompt name) in first-appearance order (the generation's class order)."""
    entries = manifest_entries(source)
    if not entries:
        raise SynthgapError(f"{source / MANIFEST} lists no images")
    verify_digests(source / MANIFEST, entries)
    lines = read_generated_manifest(source)
    check_class_folders(source / MANIFEST, lines)  # the kept files keep their folders: they must be their classes'
    by_line = dict(lines)
    records = [by_line[entry.line] for entry in entries]
    classes: dict[str, str] = {}
    for record in records:
        classes.setdefault(record["class"], str(record.get("class_name") or record["class"]))
    for record in records:
        _check_relative(source, record)
    return entries, records, list(classes.items())


def _check_relative(source: Path, record: dict[str, Any]) -> None:
    """The file's path must stay inside --out too, read as written (the source check follows the source's links)."""
    path = Path(os.path.normpath(record["file"]))
    if path.is_absolute() or path.parts[:1] == ("..",) or str(path) == ".":
        raise SynthgapError(f"{source / MANIFEST}: file {record['file']!r} is not a path inside the set")


# -- the CLIP model ------------------------------------------------------------------------------------------------


def resolve_clip(model: str) -> ClipFolder:
    """A local CLIP folder as is, a Hugging Face id through the hub cache (offline-safe); pickle-only weights are
    refused before anything is loaded."""
    local = Path(model).expanduser()
    if local.is_dir():
        folder = local
    elif model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise SynthgapError(f"CLIP model folder not found: {model} (expected a folder holding config.json)")
    else:
        try:
            folder = snapshot_folder(model, CLIP_FILES)
        except Exception as exc:  # the hub client raises several types (OSError, HTTP, offline, gated repo)
            message = hub_unavailable_message(model, exc, option="--clip-model", holds="config.json")
            raise SynthgapError(message) from None
    if not (folder / "config.json").is_file():
        raise SynthgapError(f"{model} is not a transformers model folder (no config.json in {folder})")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    weights = [p for p in files if p.suffix == ".safetensors"]
    pickled = [p for p in files if p.suffix in PICKLE_SUFFIXES]
    if not weights:
        if pickled:
            raise SynthgapError(
                f"refusing {pickled[0]}: {model} stores its CLIP weights only as pickle files, and loading them "
                "would unpickle untrusted code; convert them to safetensors (load the model where you trust the file "
                "and save it with save_pretrained(..., safe_serialization=True)), or use a model that ships "
                ".safetensors weights"
            )
        raise SynthgapError(f"{model} has no .safetensors weights in {folder}")
    digests = [file_digest(p) for p in weights]
    if len(weights) == 1:
        digest = digests[0]
    else:  # sharded weights: one digest over every shard's name and digest
        listing = "".join(f"{p.name} {d}\n" for p, d in zip(weights, digests, strict=True))
        digest = hashlib.sha256(listing.encode("utf-8")).hexdigest()
    return ClipFolder(model, folder, digest)


def load_clip(clip: ClipFolder, device: torch.device) -> tuple[Any, Any, Any]:
    """(model, tokenizer, image processor) from the folder, safetensors only, in eval mode on `device`."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # "weights not used" notices and loading bars are noise here
    try:
        with library_bars_off("transformers", "huggingface_hub"):
            model = CLIPModel.from_pretrained(clip.path, use_safetensors=True)
            tokenizer = CLIPTokenizer.from_pretrained(clip.path)
            processor = CLIPImageProcessor.from_pretrained(clip.path)
    except (ValueError, OSError) as exc:
        raise SynthgapError(f"cannot load {clip.model} as a CLIP model: {str(exc).splitlines()[0]}") from None
    finally:
        transformers_logging.set_verbosity(verbosity)
    return model.eval().to(device), tokenizer, processor


@torch.no_grad()
def clip_probabilities(
    clip: ClipFolder,
    images: list[Path],
    names: list[str],
    templates: tuple[str, ...],
    *,
    batch_size: int,
    progress: bool,
) -> np.ndarray:
    """Zero-shot class probabilities (N × C) of each image over the classes `names`."""
    from PIL import Image

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer, processor = load_clip(clip, device)
    text = class_embeddings(model, tokenizer, names, templates, batch_size=batch_size, device=device)
    scale = model.logit_scale.exp()
    probs = []
    with progress_bar(len(images), desc="curate: CLIP scores", unit="img", enabled=progress) as bar:
        for begin in range(0, len(images), batch_size):
            batch = []
            for path in images[begin : begin + batch_size]:
                with Image.open(path) as image:
                    batch.append(image.convert("RGB"))
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(device)
            features = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
            features = torch.nn.functional.normalize(features.float(), dim=-1)
            probs.append((scale * features @ text.T).softmax(dim=-1).cpu())
            bar.update(len(batch))
    return torch.cat(probs).double().numpy()


def class_embeddings(
    model: Any, tokenizer: Any, names: list[str], templates: tuple[str, ...], *, batch_size: int, device: torch.device
) -> torch.Tensor:
    """C × D: per class, the renormalised mean of its filled templates' normalised text embeddings."""
    prompts = [fill_template(template, {"name": name}) for name in names for template in templates]
    embedded = []
    for begin in range(0, len(prompts), batch_size):
        tokens = tokenizer(prompts[begin : begin + batch_size], padding=True, truncation=True, return_tensors="pt")
        tokens = {key: value.to(device) for key, value in tokens.items() if key in ("input_ids", "attention_mask")}
        features = model.text_projection(model.text_model(**tokens).pooler_output)
        embedded.append(torch.nn.functional.normalize(features.float(), dim=-1))
    per_class = torch.cat(embedded).view(len(names), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(per_class, dim=-1)


# -- writing (and reading clip_scores.csv) -------------------------------------------------------------------------


def place_file(source: Path, target: Path, sha256: str) -> bool:
    """Make `target` hold `source`'s bytes: a hard link (True) where the file system allows, else a copy (False).

    A target already linked to the source, or a copy with the expected digest (a rerun), is kept as it is."""
    if target.exists():
        if os.path.samefile(source, target):
            return True
        if file_digest(target) == sha256:
            return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        os.link(source, tmp)
    except OSError:  # another device, a file system without hard links (EXDEV, EPERM, ENOTSUP, EMLINK)
        with atomic_path(target) as copy:
            shutil.copyfile(source, copy)
        return False
    try:
        os.replace(tmp, target)  # not atomic_path: its chmod would change the source's mode (one inode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def _remove_temp_files(out: Path, kept: list[dict[str, Any]]) -> None:
    """Temp files of writes cut by a kill (`.<name>.<random>.tmp`, io.atomic_path's and place_file's pattern): in
    --out beside the files curate writes there, and in the kept files' folders. Removed once the manifest is written,
    when no write of this run is left."""
    folders = {out} | {(out / record["file"]).parent for record in kept}
    for folder in folders:
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)


def _write_scores(
    path: Path, records: list[dict[str, Any]], tops: list[str], scores: np.ndarray, keep: np.ndarray
) -> None:
    """clip_scores.csv: every source image, `file,class,score,top_class,kept` (score at full float precision)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    for record, top, score, kept in zip(records, tops, scores, keep, strict=True):
        writer.writerow([record["file"], record["class"], repr(float(score)), top, int(kept)])
    atomic_write_text(path, buffer.getvalue())


def scored_root(path: Path) -> Path:
    """The folder a scores file's file column is relative to: the scored set (the `source` that curate's
    generate.json beside it records), else the file's own folder."""
    settings = path.parent / SETTINGS
    if not settings.is_file():
        return path.parent
    try:
        source = json.loads(settings.read_text(encoding="utf-8")).get("source")
    except (ValueError, AttributeError):  # not JSON, or not an object
        raise SynthgapError(f"{settings} is not the JSON object that `synthgap curate` writes") from None
    return Path(source or path.parent)


def read_clip_scores(path: Path) -> dict[Path, float]:
    """{image file: score} from a scores CSV with at least the file and score columns (`clip_scores.csv`), files
    resolved against `scored_root`. Each score must be a finite number (NaN would rank last and ±inf first) and each
    file listed once (a second row would silently replace the first)."""
    root = scored_root(path)
    by_file: dict[Path, float] = {}
    lines: dict[Path, int] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                where = f"{path}, line {reader.line_num}"
                try:
                    name, text = row[FILE_COLUMN], row[SCORE_COLUMN]
                    file, score = (root / name).resolve(), float(text)
                except (KeyError, TypeError, ValueError):
                    raise SynthgapError(
                        f"{where}: expected columns {FILE_COLUMN} and {SCORE_COLUMN} (a number)"
                    ) from None
                if not math.isfinite(score):
                    raise SynthgapError(
                        f"{where}: the score of {name} is {text.strip()}, not a finite number (NaN "
                        "and ±inf cannot be ranked)"
                    )
                if file in lines:
                    raise SynthgapError(
                        f"{where}: {name} is listed again (first on line {lines[file]}); each image "
                        "needs exactly one score"
                    )
                by_file[file], lines[file] = score, reader.line_num
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SynthgapError(f"{path}, line {reader.line_num}: not a readable UTF-8 CSV ({exc})") from None
    return by_file


def _write_kept(path: Path, counts: tuple[ClassCount, ...]) -> None:
    """kept.csv: per class, `class,images,kept,fraction`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("class", "images", "kept", "fraction"))
    for c in counts:
        writer.writerow([c.id, c.images, c.kept, f"{c.fraction:.6f}"])
    atomic_write_text(path, buffer.getvalue())
