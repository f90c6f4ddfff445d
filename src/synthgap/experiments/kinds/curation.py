"""Curation: score every synthetic training image with the real-trained R baseline, keep the best part of each class,
train from scratch on what is kept, and compare with a random subset of the same size per class (the control).

Scores (higher is better):
- `teacher_confidence`: R's softmax probability of the image's class (He et al., ICLR'23, keep it above 1/C);
- `teacher_agreement`: 1 when R's top-1 is the image's class, else 0 (DISEF); ties ranked by R's margin of the class
  over the best other class;
- `real_knn`: max over real training images j of 1 − d(x, f_j) / r_j in R's penultimate features, r_j the distance
  of f_j to its k-th nearest real neighbour: ≥ 0 exactly when the image lies inside some real image's k-NN ball (the
  precision diagnostic of Kynkäänniemi et al. 2019, per image);
- `clip`: a score per image file read from `scores_file`, the `clip_scores.csv` that `synthgap curate` writes (zero-shot
  CLIP's probability of the image's class); no teacher and no real image is used. The file's sha256 is part of the
  run, so a changed file is a changed run; a score that is not a finite number, or an image scored twice, stops the
  experiment when it is planned (`--dry-run`, and the run before any training).

Curated and control students see the same number of images per class and, by default, the optimiser steps of the
full synthetic set (`same_steps`), so a difference between them is the choice of images, not the amount of training.
Each curated run writes its scores and its kept images (`scores.csv`, `kept.csv`) into its run folder, and the kept
images as class folders of links (`kept/<class>/`), so the curated set is a data source: `folder:<run folder>/kept`.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import torch
from pydantic import ConfigDict, Field, field_validator, model_validator
from torch import nn

from synthgap.data.loader import TensorLoader
from synthgap.data.tensors import ImageTensors
from synthgap.errors import SynthgapError
from synthgap.experiments.blocks import Strict, all_valid
from synthgap.experiments.kinds.data_reduction import same_steps_epochs
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runs import BaselineRun, DataUse, Kind, Run, RunContext, baseline
from synthgap.experiments.students import evaluation_fields, resume_state, source_model, train_in_run
from synthgap.generate.curate import read_clip_scores
from synthgap.io import atomic_write_text, file_digest
from synthgap.models import LayerMap
from synthgap.neighbours import DISTANCE_CHUNK, kth_neighbour_radius
from synthgap.train.loaders import test_normalization
from synthgap.train.loop import autocast, autocast_dtype
from synthgap.train.recipe import TrainRecipe

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings

Score = Literal["teacher_confidence", "teacher_agreement", "real_knn", "clip"]
TEACHER_FREE = ("clip",)  # scores that need no real-trained teacher
RANDOM = "random"  # the control: a random subset of the same size per class


class CurationBlock(Strict):
    """Curated synthetic subsets per (score, keep fraction or threshold), each with its random control."""

    model_config = ConfigDict(allow_inf_nan=False)  # `threshold: .nan` keeps nothing, `-.inf` everything
    kind: Literal["curation"]
    scores: list[Score] = ["teacher_confidence", "teacher_agreement", "real_knn"]
    keep: list[float] | None = None  # fractions of each class kept (default [0.5] unless a threshold is given)
    threshold: float | None = None  # instead of keep: every image whose score is at least this
    k: int = Field(5, ge=1)  # neighbours of the real_knn radius
    scores_file: Path | None = None  # the clip score: clip_scores.csv of `synthgap curate`
    control: bool = True
    schedule: Literal["same_steps", "same_epochs"] = "same_steps"
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("keep")
    @classmethod
    def _fractions(cls, values: list[float] | None) -> list[float] | None:
        return None if values is None else all_valid(values, lambda v: 0 < v <= 1, "keep must be in (0, 1]")

    @model_validator(mode="after")
    def _keep_or_threshold(self) -> CurationBlock:
        if self.keep is not None and self.threshold is not None:
            raise ValueError("give keep (fractions per class) or threshold (a score), not both")
        if self.keep is None and self.threshold is None:
            self.keep = [0.5]
        if ("clip" in self.scores) != (self.scores_file is not None):
            raise ValueError(
                "the clip score reads scores_file (clip_scores.csv of `synthgap curate`): give both or neither"
            )
        if self.scores_file is not None and not self.scores_file.is_file():
            raise ValueError(f"scores_file {self.scores_file} not found")
        return self


@dataclass(frozen=True)
class CurationRun(Run):
    score: str = "teacher_confidence"  # a Score, or "random" (the control)
    keep: float | None = None
    threshold: float | None = None
    matched: str | None = None  # a threshold control: the score whose per-class counts it matches
    k: int = 5
    schedule: str = "same_steps"
    scores_file: str | None = None
    scores_sha256: str | None = None  # the file's content is part of the run
    kind: ClassVar[str] = "curation"

    @property
    def scoring(self) -> str | None:
        """The score that decides how many images each class keeps (and which, unless this is a control)."""
        return self.matched if self.score == RANDOM else self.score

    def needs(self) -> tuple[BaselineRun, ...]:
        return (baseline("real", self.seed),) if self.scoring and self.scoring not in TEACHER_FREE else ()

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        used = {"train": DataUse(spec.data.synthetic)}
        if self.scoring == "real_knn":
            used["real"] = DataUse(spec.data.real)  # the real images' features (never their labels)
        return used


class CurationRecord(ResultRecord):
    kind: Literal["curation"] = "curation"
    score: str = ""  # the score, or "random" for a control
    keep: float | None = None
    threshold: float | None = None
    matched: str | None = None
    control: bool = False
    schedule: str = "same_steps"
    kept_images: int = 0
    kept_folder: str | None = None  # the kept images as class folders of links: a `folder:` data source
    kept_per_class: list[int] = []
    synthetic_images: int = 0  # before curation
    real_labels_used: int = 0
    real_images_used: int = 0
    teacher_fingerprint: str | None = None
    scores_file: str | None = None
    scores_sha256: str | None = None
    scoring_seconds: float = 0.0


def plan(block: CurationBlock, seeds: list[int], spec: Settings) -> list[CurationRun]:
    runs = [_plan_one(block, seed) for seed in seeds]
    if block.scores_file is None:
        return [run for group in runs for run in group]
    read_clip_scores(block.scores_file)  # a bad row stops --dry-run and the run's start, not the run itself
    file = str(block.scores_file.resolve())
    digest = file_digest(block.scores_file)
    return [
        replace(run, scores_file=file, scores_sha256=digest) if run.scoring == "clip" else run
        for group in runs
        for run in group
    ]


def _plan_one(block: CurationBlock, seed: int) -> list[CurationRun]:
    runs: list[CurationRun] = []
    for keep in block.keep or []:
        runs += [
            CurationRun(f"curation-{s}-keep{keep:g}-s{seed}", seed, s, keep, k=block.k, schedule=block.schedule)
            for s in block.scores
        ]
        if block.control:  # one control per size: every score keeps the same count per class
            runs.append(
                CurationRun(f"curation-random-keep{keep:g}-s{seed}", seed, RANDOM, keep, schedule=block.schedule)
            )
    if block.threshold is not None:
        t = block.threshold
        for s in block.scores:
            runs.append(
                CurationRun(f"curation-{s}-min{t:g}-s{seed}", seed, s, threshold=t, k=block.k, schedule=block.schedule)
            )
            if block.control:  # a threshold keeps other counts per score: a control each
                runs.append(
                    CurationRun(
                        f"curation-random-like-{s}-min{t:g}-s{seed}",
                        seed,
                        RANDOM,
                        threshold=t,
                        matched=s,
                        k=block.k,
                        schedule=block.schedule,
                    )
                )
    return runs


def classifier(model: nn.Module, layer_map: LayerMap) -> nn.Module:
    """The model's classifier, as its family's layer map names it: the last module of the last layer (a ResNet's
    `fc`, a ViT's `head`, after its final norm). Its input is the penultimate feature: one vector per image."""
    modules = dict(model.named_modules())
    names = [name for name in layer_map[len(layer_map)] if name in modules]  # bare parameters are no modules
    if not names:
        raise SynthgapError(f"the last layer of the layer map ({layer_map[len(layer_map)]}) names no module")
    return modules[names[-1]]


@torch.no_grad()
def teacher_outputs(
    teacher: nn.Module, images: ImageTensors, recipe: TrainRecipe, device: torch.device, layer_map: LayerMap
) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax probabilities, penultimate features: the classifier's input) of the teacher for every image, in
    order, on the test view. `layer_map`: the teacher's family's, which says where its classifier is."""
    head = classifier(teacher, layer_map)
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].float().cpu()))
    loader = TensorLoader(images, batch_size=recipe.eval_batch_size, normalization=test_normalization(recipe))
    dtype = autocast_dtype(recipe.precision, device)
    teacher.to(device).eval()
    probabilities = []
    try:
        for batch, _ in loader.on(device).epoch(0):
            with autocast(device, dtype):
                probabilities.append(teacher(batch.to(device)).float().softmax(dim=1).cpu())
    finally:
        hook.remove()
    return torch.cat(probabilities), torch.cat(captured).flatten(1)


def knn_precision_scores(synthetic: torch.Tensor, real: torch.Tensor, k: int) -> torch.Tensor:
    """max_j 1 − d(x, real_j) / r_j for every synthetic feature x (r_j: real_j's distance to its k-th nearest
    other real feature); ≥ 0 exactly when x lies inside some real k-NN ball."""
    radii = kth_neighbour_radius(real, min(k, len(real) - 1)).clamp_min(1e-12)
    return torch.cat(
        [
            (1 - torch.cdist(synthetic[i : i + DISTANCE_CHUNK], real) / radii).max(dim=1).values
            for i in range(0, len(synthetic), DISTANCE_CHUNK)
        ]
    )


def image_scores(run: CurationRun, ctx: RunContext, synthetic: ImageTensors) -> tuple[np.ndarray, str]:
    """The score of every synthetic training image (higher: keep first) and the teacher's fingerprint."""
    if run.scoring == "clip":
        return file_scores(Path(run.scores_file or ""), run.scores_sha256, ctx.store.train_files("synthetic")), None
    (need,) = run.needs()
    teacher = source_model(ctx, need, ctx.store.train("real"))
    recipe, device, layer_map = ctx.spec.recipe, ctx.device, ctx.family.layer_map  # the teacher is the spec's model
    probabilities, features = teacher_outputs(teacher, synthetic, recipe, device, layer_map)
    labels = synthetic.labels
    own = probabilities[torch.arange(len(labels)), labels]
    if run.scoring == "teacher_confidence":
        scores = own
    elif run.scoring == "teacher_agreement":
        others = probabilities.clone()
        others[torch.arange(len(labels)), labels] = -1
        margin = own - others.max(dim=1).values  # in (−1, 1): ranks within the agreeing and the disagreeing
        scores = (probabilities.argmax(dim=1) == labels).double() + margin.double() / 4
    else:
        _, real_features = teacher_outputs(teacher, ctx.store.train("real"), recipe, device, layer_map)
        scores = knn_precision_scores(features, real_features, run.k)
    return scores.double().numpy(), ctx.fingerprints.get(need.name)


def file_scores(path: Path, digest: str | None, files: list[Path]) -> np.ndarray:
    """The score of each training image file, from the `scores_file` of the run (`read_clip_scores`); every file
    must have one."""
    if file_digest(path) != digest:
        raise SynthgapError(f"{path} changed since the experiment was planned; run it again to plan with the new file")
    by_file = read_clip_scores(path)
    missing = [f for f in files if Path(f).resolve() not in by_file]
    if missing:
        raise SynthgapError(
            f"{path} has no score for {len(missing)} training image(s), e.g. {missing[0]}: it scores "
            "another set than data.synthetic"
        )
    return np.array([by_file[Path(f).resolve()] for f in files], dtype=np.float64)


def kept_positions(run: CurationRun, labels: np.ndarray, classes: int, scores: np.ndarray | None) -> np.ndarray:
    """Positions kept in each class: the top share `keep` by score (at least one), or those scoring ≥ the threshold
    (agreement's threshold is on its 0/1 part); a control draws the same count per class at random (seeded)."""
    rng = np.random.default_rng(run.seed)
    kept = []
    for c in range(classes):
        members = np.flatnonzero(labels == c)
        if not len(members):
            continue
        if run.threshold is not None:
            values = np.floor(scores[members]) if run.scoring == "teacher_agreement" else scores[members]
            count = int((values >= run.threshold).sum())
        else:
            count = max(1, round(run.keep * len(members)))
        if run.score == RANDOM:
            kept.append(np.sort(rng.choice(members, size=count, replace=False)))
        else:  # stable: equal scores keep their index order
            kept.append(np.sort(members[np.argsort(-scores[members], kind="stable")[:count]]))
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


def write_lists(run: CurationRun, ctx: RunContext, synthetic: ImageTensors, scores, kept: np.ndarray) -> None:
    """scores.csv (every image: position in the spec's synthetic training set, class, score, kept) and kept.csv
    (the kept ones)."""
    folder = ctx.run_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = set(kept.tolist())
    labels = synthetic.labels.numpy()

    def table(rows) -> str:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["position", "class", "score", "kept"])
        for i in rows:
            score = "" if scores is None else f"{scores[i]:.6g}"
            writer.writerow([i, synthetic.classes[labels[i]], score, int(i in chosen)])
        return text.getvalue()

    if scores is not None:
        atomic_write_text(folder / "scores.csv", table(range(len(labels))))
    atomic_write_text(folder / "kept.csv", table(kept.tolist()))


def link_kept(folder: Path, files: list[Path], labels: np.ndarray, classes: tuple[str, ...], kept: np.ndarray) -> Path:
    """`folder`/kept/<class>/<position>-<file name>: a link to each kept image (a hard link where the file system
    allows, else a symbolic one), an ImageFolder tree of the curated set. Built beside and renamed into place, so a
    killed run never leaves half a set under that name."""
    target = folder / "kept"
    building = folder / ".kept.tmp"
    shutil.rmtree(building, ignore_errors=True)
    for position in kept.tolist():
        name = classes[labels[position]]
        if name in ("", ".", "..") or "/" in name or "\\" in name:
            raise SynthgapError(f"class name {name!r} cannot be a folder name; the kept images are listed in kept.csv")
        source = Path(files[position]).resolve()
        link = building / name / f"{position:06d}-{source.name}"
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, link)
        except OSError:  # another file system, or links not allowed there
            link.symlink_to(source)
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    return target


def execute(run: CurationRun, ctx: RunContext) -> CurationRecord:
    start = time.perf_counter()
    synthetic = ctx.store.train("synthetic")
    scores, fingerprint = (None, None) if run.scoring is None else image_scores(run, ctx, synthetic)
    scoring_seconds = time.perf_counter() - start
    labels = synthetic.labels.numpy()
    kept = kept_positions(run, labels, len(synthetic.classes), scores)
    if not len(kept):
        raise SynthgapError(f"{run.name}: no synthetic image scores {run.threshold} or more; lower the threshold")
    write_lists(run, ctx, synthetic, None if run.score == RANDOM else scores, kept)
    kept_folder = link_kept(ctx.run_dir(run), ctx.store.train_files("synthetic"), labels, synthetic.classes, kept)
    train = synthetic.select(kept)
    recipe = ctx.spec.recipe
    if run.schedule == "same_steps":
        recipe = recipe.model_copy(update={"epochs": same_steps_epochs(recipe, len(synthetic), len(train))})
    _, result = train_in_run(ctx, run, train, recipe, **resume_state(ctx, run))
    uses_real = run.scoring == "real_knn"
    return CurationRecord(
        **ctx.record_fields(run, "synthetic"),
        **evaluation_fields(result.evaluation),
        epochs=recipe.epochs,
        train_images=len(train),
        seconds=time.perf_counter() - start,
        score=run.score,
        keep=run.keep,
        threshold=run.threshold,
        matched=run.matched,
        control=run.score == RANDOM,
        schedule=run.schedule,
        kept_images=len(train),
        kept_folder=str(kept_folder),
        kept_per_class=np.bincount(labels[kept], minlength=len(synthetic.classes)).tolist(),
        synthetic_images=len(synthetic),
        real_images_used=len(ctx.store.train("real")) if uses_real else 0,
        teacher_fingerprint=fingerprint,
        scores_file=run.scores_file if run.scoring == "clip" else None,
        scores_sha256=run.scores_sha256 if run.scoring == "clip" else None,
        scoring_seconds=round(scoring_seconds, 3) if scores is not None else 0.0,
        skipped_images=len(synthetic.skipped),
    )


KIND = Kind("curation", CurationBlock, plan, (CurationRun,), execute, records=(CurationRecord,))
