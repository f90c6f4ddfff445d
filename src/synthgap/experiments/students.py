"""The two ways a run gets its student: from scratch (cached, shared by every run that trains the same model) or
from a source model's layers 1..N (stage 2). Every executor builds on these."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from synthgap.data.tensorfile import open_shared
from synthgap.data.tensors import ImageTensors
from synthgap.experiments.runs import Run, RunContext
from synthgap.experiments.transfer import StageTwoResult, TransferSetup, build_student, train_student
from synthgap.models import ModelConfig, build_model
from synthgap.train.checkpoint import save_checkpoint, verify_checkpoint
from synthgap.train.distributed import ONE_PROCESS, World, share_text
from synthgap.train.loaders import eval_loader, recipe_loaders
from synthgap.train.loop import Evaluation, FitResult, Loss, fit, measure, seed_everything
from synthgap.train.recipe import TrainRecipe


def train_from_scratch(
    train: ImageTensors,
    test: ImageTensors,
    model_config: ModelConfig,
    recipe: TrainRecipe,
    seed: int,
    *,
    run_dir: Path | None,
    progress: bool,
    desc: str,
    device: torch.device | None = None,
    state_dir: Path | None = None,
    state_token: str | None = None,
    loss: Loss | None = None,
    targets: torch.Tensor | None = None,
    resident: bool | None = None,
    gpu_share: float = 1.0,
    world: World = ONE_PROCESS,
) -> tuple[nn.Module, FitResult]:
    """A freshly initialised student (seeded) trained on `train` and tested on `test`. With `state_dir`, the training
    state is saved as `fit` schedules it (at most every few minutes) and a killed training with the same
    `state_token` resumes from the last saved state. `loss` and `targets` replace the recipe's cross-entropy on the
    labels (see `fit`); `resident`: the spec's `data.device_resident` (None: decided from the sizes, against
    `gpu_share` of the GPU); `world`: this process's place in a run of several (`train.distributed`), every one of
    which calls this."""
    train_loader, test_loader = recipe_loaders(train, test, recipe, seed, targets)
    seed_everything(seed)
    model = build_model(model_config)
    result = fit(
        model,
        train_loader,
        test_loader,
        recipe,
        out_dir=run_dir,
        progress=progress,
        desc=desc,
        device=device,
        state_dir=state_dir,
        state_token=state_token,
        loss=loss,
        resident=resident,
        gpu_share=gpu_share,
        world=world,
    )
    return model, result


def serve_trainings(world: World, device: torch.device) -> None:
    """What a process other than the main one does in a run of several (`experiments.group`): train its share of
    each student the main process announces (`train_in_run`), until the main one says the run is done
    (`end_trainings`)."""
    while (text := share_text(world, None, device)) is not None:
        job = json.loads(text)
        state_dir = job["state_dir"]
        train_from_scratch(
            open_shared(job["train"]),
            open_shared(job["test"]),
            ModelConfig.model_validate(job["model"]),
            TrainRecipe.model_validate(job["recipe"]),
            job["seed"],
            run_dir=None,
            progress=False,
            desc=job["desc"],
            device=device,
            state_dir=None if state_dir is None else Path(state_dir),
            state_token=job["state_token"],
            resident=job["resident"],
            gpu_share=job["gpu_share"],
            world=world,
        )


def _training_job(
    ctx: RunContext,
    run: Run,
    train: ImageTensors,
    test: ImageTensors,
    config: ModelConfig,
    recipe: TrainRecipe,
    resume: dict,
) -> str:
    """What `serve_trainings` reads: every argument of the main process's `train_from_scratch` call, as JSON."""
    state_dir = resume.get("state_dir")
    job = {
        "train": train.shared(),
        "test": test.shared(),
        "model": config.model_dump(mode="json"),
        # every key written out (those left out when off too), so no preset fills one in on the other side
        "recipe": {**recipe.model_dump(mode="json"), "compile": recipe.compile, "sync_bn": recipe.sync_bn},
        "seed": run.seed,
        "desc": run.name,
        "state_dir": None if state_dir is None else str(state_dir),
        "state_token": resume.get("state_token"),
        "resident": ctx.spec.data.resident,
        "gpu_share": ctx.gpu_share,
    }
    return json.dumps(job)


def end_trainings(world: World, device: torch.device) -> None:
    """Tell the other processes of a run (in `serve_trainings`) that no student is left to train."""
    share_text(world, None, device)


def train_in_run(
    ctx: RunContext, run: Run, train: ImageTensors, recipe: TrainRecipe, **resume: object
) -> tuple[nn.Module, FitResult]:
    """`train_from_scratch` as a run does it: the spec's model and test set, the run's folder, seed and device, and
    the run's processes (`ctx.world`). `resume` is where a killed training continues from (`state_dir`,
    `state_token`)."""
    config = ctx.model_config(len(train.classes))
    world = ctx.world
    if "loss" in resume or "targets" in resume:  # a teacher's outputs cannot be sent: trains in this process alone
        world = ONE_PROCESS
    test = ctx.store.test()
    if world.distributed:  # the other processes, waiting in `serve_trainings`, are told what to train with this one
        share_text(world, _training_job(ctx, run, train, test, config, recipe, resume), ctx.device)
    return train_from_scratch(
        train,
        test,
        config,
        recipe,
        run.seed,
        run_dir=ctx.run_dir(run),
        progress=ctx.progress,
        desc=run.name,
        device=ctx.device,
        resident=ctx.spec.data.resident,
        gpu_share=ctx.gpu_share,
        world=world,
        **resume,
    )


@dataclass(frozen=True)
class ScratchStudent:
    key: str  # model cache entry
    reused: bool  # taken from the cache (trained by an earlier run or spec)
    seconds: float  # training time (of the earlier run when reused)
    evaluation: Evaluation
    curve: list[list[float]] | None = None  # [epoch, top-1, seconds] during training, on `curve_images` images
    curve_images: int = 0


def ensure_scratch_model(
    ctx: RunContext, run: Run, train: ImageTensors, recipe: TrainRecipe
) -> tuple[str, FitResult | None]:
    """The cache key of a from-scratch student on `train`, trained and cached first when missing (or when the cached
    file fails its check); returns the fit result when it was trained now, None when the cache already held it.
    The key is locked while training, so two processes never train the same model."""
    config = ctx.model_config(len(train.classes))
    key = ctx.models.key(train, config, recipe, run.seed, ctx.compute.identity(recipe.precision))
    with ctx.models.lock(key):
        if verify_checkpoint(ctx.models.path(key)):
            return key, None
        start = time.perf_counter()
        # a killed training resumes from the cache entry it becomes, for any run or spec
        model, result = train_in_run(ctx, run, train, recipe, state_dir=ctx.models.path(key), state_token=key)
        metadata = {
            "seconds": max(result.seconds, time.perf_counter() - start),  # with the time before a resume
            "curve": result.curve,
            "curve_images": result.curve_images,
            "train": train.key,
            "seed": run.seed,
            "model": config.model_dump(mode="json"),
            "classes": list(train.classes),
        }
        save_checkpoint(ctx.models.path(key), model, metadata)
    return key, result


def scratch_student(ctx: RunContext, run: Run, train: ImageTensors, recipe: TrainRecipe) -> ScratchStudent:
    """A from-scratch student on `train`: tested from the model cache when an earlier run or spec trained it, else
    trained and added to the cache."""
    start = time.perf_counter()
    key, result = ensure_scratch_model(ctx, run, train, recipe)
    if result is not None:
        seconds = time.perf_counter() - start
        return ScratchStudent(key, False, seconds, result.evaluation, result.curve, result.curve_images)
    model, metadata = ctx.models.load(key, ctx.model_config(len(train.classes)))
    evaluation = measure(
        model.to(ctx.device), eval_loader(ctx.store.test(), recipe), precision=recipe.precision, tta=recipe.tta
    )
    # a cache entry written before learning curves were kept has none: the record then says nothing about one
    curve, curve_images = metadata.get("curve"), metadata.get("curve_images", 0)
    return ScratchStudent(key, True, metadata["seconds"], evaluation, curve, curve_images)


def scratch_fields(
    student: ScratchStudent, train: ImageTensors, recipe: TrainRecipe, *, confusion: bool = False
) -> dict:
    """Record fields of a from-scratch student (with its class list and confusion matrix where asked for)."""
    extra = {"classes": list(train.classes)} if confusion else {}
    return {
        **student.evaluation.record_fields(confusion=confusion),
        **extra,
        "source": None,
        "n_transferred": 0,
        "frozen": False,
        "epochs": recipe.epochs,
        "top1": student.evaluation.top1,
        "top5": student.evaluation.top5,
        "train_images": len(train),
        "seconds": student.seconds,
        "model_key": student.key,
        "skipped_images": len(train.skipped),
        **curve_fields(student.curve, student.curve_images),
    }


def curve_fields(curve: list[list[float]] | None, curve_images: int) -> dict:
    """The learning-curve fields of a record (none when no evaluation ran during training)."""
    if not curve or len(curve) < 2:
        return {}
    return {"curve": curve, "curve_images": curve_images}


def evaluation_fields(evaluation: Evaluation) -> dict:
    """The record fields of a test pass: top-1, top-5 and the per-class results."""
    return {"top1": evaluation.top1, "top5": evaluation.top5, **evaluation.record_fields()}


def source_model(ctx: RunContext, source_run: Run, source_train: ImageTensors) -> nn.Module:
    """The cached model `source_run` trained. It ran first (the runner orders runs by their needs); should its
    cache entry have gone or failed its check since, it is trained again here, identically (same seed)."""
    key, _ = ensure_scratch_model(ctx, source_run, source_train, ctx.spec.recipe)
    model, _ = ctx.models.load(key, ctx.model_config(len(source_train.classes)))
    return model


def train_from_source(
    ctx: RunContext,
    run: Run,
    source_run: Run,
    source_train: ImageTensors,
    setup: TransferSetup,
    train: ImageTensors,
    recipe: TrainRecipe,
) -> tuple[nn.Module, StageTwoResult]:
    """The student with layers 1..N of `source_run`'s model, trained on `train`; returns it and its result."""
    return train_from_model(ctx, run, source_model(ctx, source_run, source_train), setup, train, recipe)


def train_from_model(
    ctx: RunContext, run: Run, source: nn.Module, setup: TransferSetup, train: ImageTensors, recipe: TrainRecipe
) -> tuple[nn.Module, StageTwoResult]:
    """The student with layers 1..N of the model `source`, trained on `train`; returns it and its result."""
    seed_everything(run.seed)
    fresh = build_model(ctx.model_config(len(train.classes)))
    student = build_student(source, fresh, setup, ctx.family)
    result = train_student(
        student,
        setup,
        train,
        ctx.store.test(),
        recipe,
        seed=run.seed,
        family=ctx.family,
        device=ctx.device,
        out_dir=ctx.run_dir(run),
        progress=ctx.progress,
        desc=run.name,
        resident=ctx.spec.data.resident,
        gpu_share=ctx.gpu_share,
        **resume_state(ctx, run),
    )
    return student, result


def resume_state(ctx: RunContext, run: Run) -> dict:
    """Where a run's own training (not a cached model's) saves its state, and the token a resume must match: the
    run's fingerprint, so only a run with the same settings continues it."""
    fingerprint = ctx.fingerprints.get(run.name)
    return {"state_dir": ctx.run_dir(run), "state_token": fingerprint} if fingerprint else {}
