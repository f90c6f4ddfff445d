"""Distillation: students trained on the synthetic images with a real-trained teacher's soft labels (DM-KD), and
synthetic→real layer transfers from such a student (does distillation move the gap out of the last layers?).

The teacher is, by default, the R baseline of the same seed (declared as a need, so it is trained once and taken from
the model cache); or a `synthgap train` checkpoint; or a timm model with local safetensors weights and its own input
normalization (those two are loaded, and their class lists checked, by `synthgap.train.teachers`). Each record says
what real information the student used: real labels and real images seen (both 0 for data-free distillation) and the
teacher's fingerprint (the R run's, or its weights' SHA-256).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from pydantic import ConfigDict, Field, field_validator, model_validator

from synthgap.data.tensors import ImageTensors, concat_images
from synthgap.data.transforms import get_normalization
from synthgap.errors import SynthgapError
from synthgap.experiments.blocks import Strict, all_valid, check_layers
from synthgap.experiments.cachekey import cache_key
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runs import BaselineRun, DataUse, Kind, Run, RunContext, baseline, caches_a_prefix
from synthgap.experiments.students import evaluation_fields, source_model, train_from_model, train_in_run
from synthgap.experiments.transfer import TransferSetup
from synthgap.train.checkpoint import METADATA, WEIGHTS, checked_metadata, save_checkpoint
from synthgap.train.distill import UNLABELLED, DistillationLoss, distillation_targets, teacher_logits, teacher_view
from synthgap.train.loaders import test_normalization
from synthgap.train.teachers import (
    Teacher,
    TimmSource,
    check_teacher_classes,
    checkpoint_classes,
    checkpoint_fingerprint,
    load_checkpoint_teacher,
    load_timm_teacher,
    timm_fingerprint,
)

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings
    from synthgap.models import ModelFamily


class TeacherConfig(Strict):
    """A teacher other than the R baseline: a `synthgap train` checkpoint folder, or a timm model with local
    safetensors weights (`weights`), optionally its input statistics (`mean`/`std`, default: timm's for that model),
    its class list in label order (`classes`, checked against the data's) and `kwargs` for `timm.create_model`."""

    model_config = ConfigDict(allow_inf_nan=False)
    checkpoint: Path | None = None
    timm: str | None = None
    weights: Path | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    classes: list[str] | None = None
    kwargs: dict = {}

    @model_validator(mode="after")
    def _one_source(self) -> TeacherConfig:
        if (self.checkpoint is None) == (self.timm is None):
            raise ValueError("teacher: give either checkpoint (a synthgap train checkpoint) or timm (a model name)")
        if self.timm is not None:
            if self.weights is None or self.weights.suffix != ".safetensors":
                raise ValueError(f"teacher weights must be a .safetensors file (never a pickle), got {self.weights}")
            import timm

            if not timm.is_model(self.timm):
                raise ValueError(f"unknown timm model {self.timm!r}")
        if self.checkpoint is not None:
            folder = Path(self.checkpoint)
            if not (folder / WEIGHTS).is_file() or not (folder / METADATA).is_file():
                raise ValueError(
                    f"teacher checkpoint {folder} is not a synthgap checkpoint folder ({WEIGHTS} + {METADATA}; "
                    "weights are read from safetensors only)"
                )
        return self

    def digest(self) -> str:
        """The teacher's fingerprint: a hash of its weights' SHA-256 and of what says how to use them (a checkpoint's
        metadata: model, classes, normalization; a timm teacher's settings)."""
        if self.checkpoint is not None:
            return checkpoint_fingerprint(self.checkpoint)
        return timm_fingerprint(self.model_dump(mode="json"), self.weights)

    @property
    def description(self) -> str:
        return f"teacher checkpoint {self.checkpoint}" if self.checkpoint is not None else f"timm teacher {self.timm}"

    def class_list(self) -> list[str] | None:
        """The teacher's classes in label order, from what is stored beside its weights (a checkpoint's metadata) or
        given (`classes`); None when unknown. Reads no weights."""
        if self.checkpoint is None:
            return self.classes
        return checkpoint_classes(self.checkpoint, self.description)

    def timm_source(self) -> TimmSource:
        """What loading a timm teacher needs of these settings."""
        return TimmSource(self.timm, Path(self.weights), self.mean, self.std, self.classes, self.kwargs)


class DistillationBlock(Strict):
    """Students on the synthetic images with a teacher's soft labels, one per (seed, temperature, alpha)."""

    # `temperature: .inf` would pass `> 0` and train a student on uniform soft labels until it diverged
    model_config = ConfigDict(allow_inf_nan=False)
    kind: Literal["distillation"]
    temperature: list[float] = [4.0]  # softmax temperature T (a number or a list); DM-KD uses 10
    alpha: list[float] = [0.9]  # weight of the soft term (a number or a list); 1.0 = soft labels only
    unlabelled_real: bool = False  # the student also sees the real training images, without labels, via the teacher
    teacher: TeacherConfig | None = None  # default: the R baseline of the same seed
    transfer_n: list[int] = []  # synthetic→real students with layers 1..N of the distilled student (first T, alpha)
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("temperature", "alpha", mode="before")
    @classmethod
    def _as_list(cls, value: object) -> object:
        return value if isinstance(value, list) else [value]

    @field_validator("temperature")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        return all_valid(values, lambda v: v > 0, "temperature must be positive")

    @field_validator("alpha")
    @classmethod
    def _weight(cls, values: list[float]) -> list[float]:
        return all_valid(values, lambda v: 0 <= v <= 1, "alpha must be in [0, 1]")


@dataclass(frozen=True)
class DistillationRun(Run):
    temperature: float = 4.0
    alpha: float = 0.9
    unlabelled_real: bool = False
    teacher: str = "baseline"  # "baseline" (R of the seed) | the TeacherConfig as JSON
    teacher_sha256: str | None = None  # an outside teacher's weights (None: the R baseline, fingerprinted as a need)
    kind: ClassVar[str] = "distillation"

    def needs(self) -> tuple[BaselineRun, ...]:
        return (baseline("real", self.seed),) if self.teacher == "baseline" else ()

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        used = {"train": DataUse(spec.data.synthetic)}
        if self.unlabelled_real:
            used["unlabelled"] = DataUse(spec.data.real)
        return used

    @property
    def teacher_config(self) -> TeacherConfig | None:
        return None if self.teacher == "baseline" else TeacherConfig.model_validate_json(self.teacher)

    def check_classes(self, classes: tuple[str, ...]) -> None:
        config = self.teacher_config
        if config is not None:  # the R baseline is trained on these very classes
            check_teacher_classes(config.class_list(), classes, config.description)


@dataclass(frozen=True)
class DistilledTransferRun(Run):
    """Layers 1..n of a distilled student, frozen; the rest trained from scratch on the real images."""

    n: int = 0
    distilled: DistillationRun | None = None
    kind: ClassVar[str] = "distillation"

    def needs(self) -> tuple[DistillationRun, ...]:
        return (self.distilled,)

    def trains_a_suffix(self, spec: Settings) -> bool:
        return caches_a_prefix(self.n, spec.recipe.augmentation, spec)  # stage 2 trains with the spec's recipe

    def data_used(self, spec: Settings) -> dict[str, DataUse]:
        return {**self.distilled.data_used(spec), "real": DataUse(spec.data.real)}


class DistillationRecord(ResultRecord):
    kind: Literal["distillation"] = "distillation"
    student: str = "distilled"  # distilled | transfer (layers 1..n_transferred of a distilled student)
    temperature: float = 4.0
    alpha: float = 0.9
    unlabelled_real: bool = False
    teacher: str = ""  # what the teacher is
    teacher_fingerprint: str | None = None  # the R run's fingerprint, or the teacher weights' SHA-256
    cached_teacher_logits: bool = False
    real_labels_used: int = 0
    real_images_used: int = 0
    synthetic_images: int = 0
    model_key: str | None = None


def run_name(seed: int, temperature: float, alpha: float, unlabelled: bool, outside: bool) -> str:
    name = f"distill-T{temperature:g}-a{alpha:g}"
    name += "-unlabelled_real" if unlabelled else ""
    name += "-teacher" if outside else ""
    return f"{name}-s{seed}"


def plan(block: DistillationBlock, seeds: list[int], spec: Settings) -> list[Run]:
    teacher = "baseline" if block.teacher is None else block.teacher.model_dump_json()
    digest = None if block.teacher is None else block.teacher.digest()
    runs: list[Run] = []
    for seed in seeds:
        students = [
            DistillationRun(
                run_name(seed, t, a, block.unlabelled_real, block.teacher is not None),
                seed,
                t,
                a,
                block.unlabelled_real,
                teacher,
                digest,
            )
            for t in block.temperature
            for a in block.alpha
        ]
        runs += students
        for n in block.transfer_n:
            name = f"transfer-distilled_to_real-n{n:02d}-from-{students[0].name}"
            runs.append(DistilledTransferRun(name, seed, n, students[0]))
    return runs


def check(block: DistillationBlock, spec: Settings, family: ModelFamily) -> None:
    last = family.num_layers
    check_layers(block.transfer_n, 1, last - 1, f"distillation transfer_n ({family.name} has {last} layers)")
    if block.unlabelled_real and spec.data.real == spec.data.synthetic:
        raise ValueError("distillation unlabelled_real needs a real side (data.real) apart from the synthetic one")


def load_teacher(run: DistillationRun, ctx: RunContext) -> tuple[Teacher, str | None]:
    """The run's teacher and its fingerprint: the R run's for the R baseline (taken from the model cache), the one
    computed when the run was planned for an outside teacher, so the record names what the run's identity holds."""
    config = run.teacher_config
    classes = ctx.store.classes
    if config is None:
        (need,) = run.needs()
        model = source_model(ctx, need, ctx.store.train("real"))
        teacher = Teacher(model, test_normalization(ctx.spec.recipe), f"R baseline {need.name}")
        return teacher, ctx.fingerprints.get(need.name)
    if config.checkpoint is not None:
        return load_checkpoint_teacher(config.checkpoint, classes, config.description), run.teacher_sha256
    return load_timm_teacher(config.timm_source(), classes, config.description), run.teacher_sha256


def distilled_key(ctx: RunContext, run: DistillationRun) -> str:
    """The model cache entry of a distilled student: its run's fingerprint says everything that made it."""
    return cache_key({"distilled": ctx.fingerprints[run.name], "compute": ctx.compute_identity})


def training_images(run: DistillationRun, ctx: RunContext) -> tuple[ImageTensors, torch.Tensor, int]:
    """The student's images (synthetic, then the real ones when it sees them unlabelled), their label column (−1
    for the real images: the student never sees their labels) and how many are real."""
    synthetic = ctx.store.train("synthetic")
    if not run.unlabelled_real:
        return synthetic, synthetic.labels, 0
    real = ctx.store.train("real")
    labels = torch.cat([synthetic.labels, torch.full_like(real.labels, UNLABELLED)])
    return concat_images([synthetic, real]), labels, len(real)


def distil(run: DistillationRun, ctx: RunContext) -> tuple[str, dict]:
    """Train (or find in the model cache) the distilled student of `run`; returns its cache key and metadata."""
    key = distilled_key(ctx, run)
    with ctx.models.lock(key):
        path = ctx.models.path(key)
        if ctx.models.has(key):
            try:
                return key, checked_metadata(path)
            except SynthgapError:
                pass  # damaged: trained again below, identically
        start = time.perf_counter()
        recipe = ctx.spec.recipe
        teacher, fingerprint = load_teacher(run, ctx)
        student_norm = get_normalization(recipe.normalization)
        view = teacher_view(teacher.model, student_norm, teacher.normalization).to(ctx.device)
        images, labels, real_images = training_images(run, ctx)
        cached = recipe.augmentation == "none"  # the same view every epoch: the teacher's logits once
        logits = None
        if cached:
            logits = teacher_logits(
                view,
                images,
                student_norm,
                batch_size=recipe.eval_batch_size,
                precision=recipe.precision,
                device=ctx.device,
            )
        loss = DistillationLoss(None if cached else view, temperature=run.temperature, alpha=run.alpha)
        model, result = train_in_run(
            ctx,
            run,
            images,
            recipe,
            state_dir=path,
            state_token=key,
            loss=loss,
            targets=distillation_targets(labels, logits),
        )
        metadata = {
            "seconds": max(result.seconds, time.perf_counter() - start),
            "classes": list(images.classes),
            "model": ctx.model_config(len(images.classes)).model_dump(mode="json"),
            "teacher": teacher.description,
            "teacher_fingerprint": fingerprint,
            "cached_teacher_logits": cached,
            "real_images": real_images,
            "synthetic_images": len(images) - real_images,
            "evaluation": {**evaluation_fields(result.evaluation), "confusion": result.evaluation.confusion.tolist()},
        }
        save_checkpoint(path, model, metadata)
    return key, checked_metadata(path)


def execute(run: DistillationRun | DistilledTransferRun, ctx: RunContext) -> DistillationRecord:
    if isinstance(run, DistilledTransferRun):
        return execute_transfer(run, ctx)
    key, metadata = distil(run, ctx)
    evaluation = {k: v for k, v in metadata["evaluation"].items() if k != "confusion"}
    return DistillationRecord(
        **ctx.record_fields(run, "synthetic"),
        **evaluation,
        epochs=ctx.spec.recipe.epochs,
        train_images=metadata["synthetic_images"] + metadata["real_images"],
        seconds=metadata["seconds"],  # its training (by an earlier run when the cache held the student)
        temperature=run.temperature,
        alpha=run.alpha,
        unlabelled_real=run.unlabelled_real,
        teacher=metadata["teacher"],
        teacher_fingerprint=metadata["teacher_fingerprint"],
        cached_teacher_logits=metadata["cached_teacher_logits"],
        real_labels_used=0,
        real_images_used=metadata["real_images"],
        synthetic_images=metadata["synthetic_images"],
        model_key=key,
        skipped_images=len(ctx.store.train("synthetic").skipped),
    )


def execute_transfer(run: DistilledTransferRun, ctx: RunContext) -> DistillationRecord:
    """Layers 1..n of the distilled student (frozen), the rest trained on the real images, as in the layer sweep."""
    start = time.perf_counter()
    key, metadata = distil(run.distilled, ctx)
    source, _ = ctx.models.load(key, ctx.model_config(len(metadata["classes"])))
    train = ctx.store.train("real")
    recipe = ctx.spec.recipe
    _, result = train_from_model(ctx, run, source, TransferSetup(n=run.n, freeze=True), train, recipe)
    distilled = run.distilled
    return DistillationRecord(
        **ctx.record_fields(run, "real"),
        **evaluation_fields(result.fit.evaluation),
        source=f"distilled:{distilled.name}",
        source_side="synthetic",
        n_transferred=run.n,
        frozen=True,
        epochs=recipe.epochs,
        train_images=len(train),
        seconds=time.perf_counter() - start,
        student="transfer",
        temperature=distilled.temperature,
        alpha=distilled.alpha,
        unlabelled_real=distilled.unlabelled_real,
        teacher=metadata["teacher"],
        teacher_fingerprint=metadata["teacher_fingerprint"],
        real_labels_used=len(train),
        real_images_used=len(train) + metadata["real_images"],
        synthetic_images=metadata["synthetic_images"],
        model_key=key,
    )


KIND = Kind(
    "distillation",
    DistillationBlock,
    plan,
    (DistillationRun, DistilledTransferRun),
    execute,
    records=(DistillationRecord,),
    check=check,
)
