"""Train a student and measure it: `fit` reads top to bottom — set up, then epochs of steps, then evaluation."""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from synthgap.data.loader import FeatureLoader, TensorLoader, run_residency
from synthgap.errors import DivergenceError, SynthgapError
from synthgap.models.layers import train_mode
from synthgap.progress import Progress, progress_bar
from synthgap.train.distributed import ONE_PROCESS, World, agree, plain_batchnorm, wrap
from synthgap.train.recipe import TrainRecipe
from synthgap.train.state import TrainingParts, TrainState
from synthgap.train.tta import apply_view, tta_views

Loader = TensorLoader | FeatureLoader
# (logits, targets, images) -> loss: what a training step minimises; `targets` are what the loader yields beside the
# images (class labels, or any per-image tensor such as a teacher's cached logits), `images` the normalized batch
Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
CHECK_EVERY = 50  # steps between divergence checks: one device sync each, so a GPU is never stalled per step
# Wall-time minutes between saves of the training state: a GPU-size state is 60-95 MB written and fsynced, and a run
# of thousands of short epochs (a small data fraction with the same optimiser steps) must not write one per epoch.
CHECKPOINT_MINUTES = 10.0
CHECKPOINT_MINUTES_ENV = "SYNTHGAP_CHECKPOINT_MINUTES"  # overrides it, e.g. 0 on machines that are often preempted


@dataclass
class FitResult:
    top1: float  # percent, on the test loader
    top5: float
    seconds: float  # training time, including the sessions before a resume (not the work a kill lost)
    train_images: int  # distinct training images
    history: list[dict[str, float]] = field(default_factory=list)
    evaluation: Evaluation | None = None  # the last test pass, per class
    resumed_epochs: int = 0  # epochs restored from a saved training state (0: trained from the start)
    curve_images: int = 0  # test images of the learning curve (the fixed subset, or the whole test set)
    data_resident: bool | None = None  # whether the images were kept in GPU memory (None: on the CPU, or features)

    @property
    def curve(self) -> list[list[float]]:
        """[epoch, top-1, seconds of training so far] of every evaluation during training, all on the same
        `curve_images` test images."""
        return [
            [row["epoch"], round(row["curve_top1"], 4), round(row["seconds"], 1)]
            for row in self.history
            if "curve_top1" in row
        ]


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The words of /proc/cpuinfo (its instruction-set flags among them); empty where it cannot be read."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX). Elsewhere bf16 autocast is emulated and
    was measured 50× slower than fp32 for this student (AVX2 machine), so "auto" must not pick it."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision name; None means full fp32. "auto" on a GPU is bf16 where the card computes
    it natively (no GradScaler, so no per-step read-back of its inf check) and fp16 with a scaler elsewhere."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if cuda_has_bf16(device) else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if precision == "bf16" and device.type == "cuda" and not cuda_has_bf16(device):
        name = torch.cuda.get_device_name(device)
        raise SynthgapError(
            f"recipe.precision bf16 needs a GPU with native bf16 (compute capability 8.0 or later); "
            f"{name} has none: use fp16 or auto"
        )
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def cuda_has_bf16(device: torch.device) -> bool:
    """True on a GPU with native bf16 arithmetic (compute capability 8.0 and later: A100, H100, RTX 30xx on). A process
    that sees no GPU (a head node identifying a GPU run) assumes the cards synthgap targets, which all have it."""
    if not torch.cuda.is_available():
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: linear warm-up from ~0 to 1, then cosine decay to 0 at the last step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def triangular(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: linear from ~0 up to 1 at the peak, then linear down to 0 at the end."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def onecycle(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: a half cosine up to 1 at the peak, then a half cosine down to 0 at the end."""
    if step < warmup_steps:
        return 0.5 * (1.0 - math.cos(math.pi * (step + 1) / warmup_steps))
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


SCHEDULES = {"cosine": warmup_cosine, "triangular": triangular, "onecycle": onecycle}


def lr_schedule(recipe: TrainRecipe, steps_per_epoch: int) -> Callable[[int], float]:
    """The recipe's LR multiplier per step: its shape, peaking at `peak` of the steps (or after `warmup_epochs`)."""
    total = recipe.epochs * steps_per_epoch
    if recipe.peak is not None:
        warmup = round(recipe.peak * total)
    else:
        warmup = round(recipe.warmup_epochs * steps_per_epoch)
    shape = SCHEDULES[recipe.schedule]
    return functools.partial(shape, warmup_steps=min(total, warmup), total_steps=total)


def build_optimizer(model: nn.Module, recipe: TrainRecipe, device: torch.device | None = None) -> torch.optim.SGD:
    """SGD over trainable parameters only: frozen transferred layers get no momentum buffers and no decay. Without
    `decay_norm_and_bias`, BatchNorm weights and biases (every 1-d parameter) are not decayed either. On a GPU
    (`device`) the fused kernel: one launch per step, and a GradScaler hands it the inf check instead of reading it
    back to the host; the CPU keeps the per-parameter loop its recorded numbers were made with."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    groups: list[dict] = [{"params": params}]
    if not recipe.decay_norm_and_bias:
        groups = [
            {"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
        groups = [group for group in groups if group["params"]]
    return torch.optim.SGD(
        groups,
        lr=recipe.peak_lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
        **optimizer_options(device),
    )


def optimizer_options(device: torch.device | None) -> dict:
    """The SGD implementation for `device`: fused on a GPU, the default elsewhere."""
    return {"fused": True} if device is not None and device.type == "cuda" else {}


class WeightAverage:
    """An exponential moving average of a model's weights and BatchNorm statistics, updated after every step.

    The decay ramps up as min(decay, (1 + t) / (10 + t)) over the t updates so far, so the first steps' random
    weights fade quickly in short runs. `model` is what the loop tests and returns: `swap` exchanges the averaged
    and the live weights in place (twice restores them), so no second model is ever built.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.average = [t.detach().clone() for t in self.tensors]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.average, self.tensors, 1.0 - decay)

    @torch.no_grad()
    def swap(self) -> None:
        for live, average in zip(self.tensors, self.average, strict=True):
            held = live.clone()
            live.copy_(average)
            average.copy_(held)

    def state_dict(self) -> dict:
        return {"updates": torch.tensor(self.updates), "average": list(self.average)}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for average, saved in zip(self.average, state["average"], strict=True):
            average.copy_(saved)


class TrainStep:
    """One optimisation step; shared by `fit` and the compute-only benchmark so both time the same work."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        recipe: TrainRecipe,
        device: torch.device,
        loss: Loss | None = None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.device = device
        self.dtype = autocast_dtype(recipe.precision, device)
        self.loss_fn = loss or cross_entropy(recipe.label_smoothing)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 and device.type == "cuda" else None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        with autocast(self.device, self.dtype):
            loss = self.loss_fn(self.model(images), labels, images)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss.detach()


def cross_entropy(label_smoothing: float = 0.0) -> Loss:
    """The default loss: cross-entropy of the logits against the class labels."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return lambda logits, labels, images: criterion(logits, labels)


@dataclass(frozen=True)
class Evaluation:
    """What one pass over a labelled test set measured: top-1 and top-5 (percent) and the confusion matrix."""

    top1: float
    top5: float
    confusion: torch.Tensor  # C×C counts on the CPU: row = true class, column = predicted class

    @property
    def per_class_top1(self) -> list[float]:
        """Top-1 (percent) of each class's test images; NaN for a class without test images."""
        totals = self.confusion.sum(dim=1).double()
        return (100.0 * self.confusion.diagonal().double() / totals).tolist()

    @property
    def balanced_top1(self) -> float:
        """Mean per-class top-1 over the classes that have test images (insensitive to class imbalance)."""
        values = [v for v in self.per_class_top1 if not math.isnan(v)]
        return sum(values) / len(values)

    def record_fields(self, *, confusion: bool = False) -> dict:
        """Per-class fields of a result record (rounded; the confusion matrix only where asked for)."""
        fields = {
            "balanced_top1": round(self.balanced_top1, 4),
            "per_class_top1": [None if math.isnan(v) else round(v, 4) for v in self.per_class_top1],
        }
        if confusion:
            fields["confusion"] = self.confusion.tolist()
        return fields


@torch.no_grad()
def measure(
    model: nn.Module,
    loader: Loader,
    *,
    precision: str = "auto",
    device: torch.device | None = None,
    tta: str = "none",
) -> Evaluation:
    """Top-1, top-5 and the confusion matrix over one pass of `loader`. With test-time augmentation (`tta`, a policy
    of `synthgap.train.tta`) each image's logits are the weighted mean over its views: made here from images, or
    read from a feature loader that was given each view's features."""
    device = device or next(model.parameters()).device
    dtype = autocast_dtype(precision, device)
    loader = loader.on(device)
    views = tta_views(tta)
    other_views = loader.view_batches(len(views) - 1) if isinstance(loader, FeatureLoader) and len(views) > 1 else None
    model.eval()
    correct5 = total = 0
    confusion = None
    for images, labels in loader.epoch(0):
        images, labels = images.to(device), labels.to(device)
        seen = (images, *next(other_views)) if other_views is not None else None
        with autocast(device, dtype):
            logits = 0.0
            for i, view in enumerate(views):
                shown = apply_view(images, view) if seen is None else seen[i].to(device)
                # weights are powers of two: the mean of two views is (a + b) / 2 to the last bit
                logits = logits + view.weight * model(shown).float()
        classes = logits.shape[1]
        k = min(5, classes)
        top = logits.topk(k, dim=1).indices
        correct5 += (top == labels[:, None]).any(dim=1).sum().item()
        total += len(labels)
        pairs = torch.bincount(labels * classes + top[:, 0], minlength=classes * classes).view(classes, classes)
        confusion = pairs.cpu() if confusion is None else confusion + pairs.cpu()
    top1 = 100.0 * confusion.diagonal().sum().item() / total
    return Evaluation(top1, 100.0 * correct5 / total, confusion)


def evaluate(
    model: nn.Module, loader: Loader, *, precision: str = "auto", device: torch.device | None = None, tta: str = "none"
) -> tuple[float, float]:
    """(top-1, top-5) accuracy in percent over one pass of `loader`."""
    result = measure(model, loader, precision=precision, device=device, tta=tta)
    return result.top1, result.top5


def fit(
    model: nn.Module,
    train_loader: Loader,
    test_loader: Loader | None,
    recipe: TrainRecipe,
    *,
    out_dir: Path | None = None,
    progress: bool = True,
    device: torch.device | None = None,
    desc: str = "train",
    state_dir: Path | None = None,
    state_token: str | None = None,
    checkpoint_every: int = 1,
    checkpoint_minutes: float | None = None,
    loss: Loss | None = None,
    resident: bool | None = None,
    gpu_share: float = 1.0,
    world: World = ONE_PROCESS,
) -> FitResult:
    """Train `model` in place for `recipe.epochs` epochs and evaluate it on `test_loader`.

    With `state_dir`, the training state is saved to `state_dir/train_state.pt` after an epoch (but the last) once
    `checkpoint_minutes` of wall time have passed since the last save (0: after every epoch; None:
    `checkpoint_interval()`, read at each call so a test can set it for a whole sweep), at epochs that are
    multiples of `checkpoint_every`; a run killed in between continues from the last saved state when called again
    with the same `state_token` (on the CPU, to bit-identical weights: a save changes no number). The file is removed
    once `fit` finishes or diverges: the finished model is the caller's to save.
    `loss` replaces the recipe's cross-entropy (e.g. distillation from a teacher); it must be deterministic given the
    batch for a resume to be bit-identical.
    On a GPU the images are kept in its memory when `resident` is True, or (None) when training and test set
    together fit `gpu_share` of it (`synthgap.data.loader.keeps_resident`); the result says which it was.
    In a run of several processes (`world`, see `train.distributed`) each trains its share of every batch; only the
    main process writes the log and the training state, and every process resumes from that state.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive number of epochs, got {checkpoint_every}")
    minutes = checkpoint_interval() if checkpoint_minutes is None else checkpoint_minutes
    checkpoints = CheckpointClock(minutes)  # from the session's start: its first save is due minutes later
    # 1. Set up: device, memory format, optimiser over trainable parameters, per-step LR schedule.
    device = torch.device(device or default_device())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN picks its fastest kernels once, on the first steps
    resident = run_residency(device, (train_loader, test_loader), resident=resident, gpu_share=gpu_share)
    train_loader = train_loader.on(device, resident=resident)  # on a GPU: batches move as uint8, augmented there
    test_loader = test_loader.on(device, resident=resident) if test_loader is not None else None
    memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    optimizer = build_optimizer(model, recipe, device)
    if world.distributed:  # image loaders only: a cached-feature stage 2 trains in one process
        train_loader = train_loader.for_rank(world.rank, world.size)
    if not world.main:
        out_dir, progress = None, False  # the main process logs and reports for the run
    steps_per_epoch = len(train_loader)
    total_steps = recipe.epochs * steps_per_epoch
    schedule = lr_schedule(recipe, steps_per_epoch)
    # a lambda, not the partial itself: LambdaLR would try to save a callable object's attributes with its state
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s))
    wrapped = wrap(model, world, device, sync_bn=recipe.sync_bn)
    step = TrainStep(compiled(wrapped, recipe.compile), optimizer, recipe, device, loss)
    average = WeightAverage(model, recipe.ema_decay) if recipe.ema_decay is not None else None
    curve_loader = curve_subset(test_loader, recipe.eval_images)

    # 2. Continue an interrupted run of this same training (same token) from its last saved state, if there is one.
    parts = TrainingParts(model, optimizer, scheduler, step.scaler, device, average)
    state = None
    if state_dir is not None:
        state = TrainState(
            state_dir, state_token, epochs=recipe.epochs, steps_per_epoch=steps_per_epoch, writes=world.main
        )
    resumed = state.restore(parts) if state else None
    history: list[dict[str, float]] = resumed.history if resumed else []
    first_epoch = len(history)
    agree(world, first_epoch, "the epoch to resume from", device)
    earlier_seconds = history[-1]["seconds"] if history else 0.0  # training time of the sessions before
    logger = _EpochLogger(out_dir, history)
    top1 = top5 = float("nan")
    evaluation = None
    start = time.perf_counter()
    bar = progress_bar(
        total_steps,
        initial=first_epoch * steps_per_epoch,
        desc=desc,
        unit="step",
        enabled=progress,
        epochs=recipe.epochs,
    )

    # 3. Epochs of steps; frozen BatchNorms stay in eval mode (train_mode). A diverged run raises DivergenceError
    #    before it is evaluated or returned, so no number of it can be recorded; its saved state goes too, so a rerun
    #    starts afresh instead of resuming into the same divergence.
    try:
        for epoch in range(first_epoch, recipe.epochs):
            train_mode(model)
            loss = train_epoch(step, scheduler, train_loader, epoch, bar, desc=desc, lr=recipe.peak_lr, average=average)
            row = {"epoch": epoch + 1, "train_loss": loss, "lr": scheduler.get_last_lr()[0]}

            # 4. Evaluation on the real test set, with the averaged weights when the recipe keeps an average: the
            #    learning curve every `eval_every` epochs (on the fixed subset), the whole test set after the last.
            last = epoch + 1 == recipe.epochs
            due = last or (recipe.eval_every and (epoch + 1) % recipe.eval_every == 0)
            if test_loader is not None and world.main and due:  # the others go on to the next epoch's first step
                with averaged(average):
                    curve = measure(model, curve_loader, precision=recipe.precision, device=device, tta=recipe.tta)
                    row["curve_top1"] = curve.top1
                    if last:
                        evaluation = (
                            curve
                            if curve_loader is test_loader
                            else measure(model, test_loader, precision=recipe.precision, device=device, tta=recipe.tta)
                        )
                        top1, top5 = evaluation.top1, evaluation.top5
                        row.update(top1=top1, top5=top5)
                    elif curve_loader is test_loader:
                        row.update(top1=curve.top1, top5=curve.top5)
            row["seconds"] = earlier_seconds + time.perf_counter() - start
            history.append(row)
            logger.log(row)
            bar.epoch_done(row)

            # 5. The state to resume from, between epochs (after the last one the run is complete), when due.
            if state and not last and (epoch + 1) % checkpoint_every == 0 and checkpoints.due():
                state.save(parts, history)
                checkpoints.saved()
    except DivergenceError:
        if state:
            state.remove()
        raise
    finally:
        bar.close()
        logger.close()
        plain_batchnorm(model)  # the student leaves with the layers it came with (a no-op without sync_bn)
    if average is not None:
        average.swap()  # the student is the averaged model from here on: what was tested is what is saved
    if state:
        state.remove()
    seconds = earlier_seconds + time.perf_counter() - start
    curve_images = curve_loader.num_samples if curve_loader is not None else 0
    samples, resident = train_loader.num_samples, train_loader.resident
    return FitResult(top1, top5, seconds, samples, history, evaluation, first_epoch, curve_images, resident)


def compiled(model: nn.Module, on: bool) -> nn.Module:
    """`model` as the training step runs it: through `torch.compile` when the recipe asks (the first steps then
    compile, which takes seconds to minutes; the weights are `model`'s own, so saving and evaluating are unchanged)."""
    return torch.compile(model) if on else model


def checkpoint_interval() -> float:
    """Minutes between saves of the training state: $SYNTHGAP_CHECKPOINT_MINUTES when set (0: after every epoch),
    else `CHECKPOINT_MINUTES`."""
    text = os.environ.get(CHECKPOINT_MINUTES_ENV)
    if text is None:
        return CHECKPOINT_MINUTES
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not 0 <= minutes < math.inf:
        raise SynthgapError(f"{CHECKPOINT_MINUTES_ENV} must be a number of minutes, 0 or more, got {text!r}")
    return minutes


class CheckpointClock:
    """When the training state is due: once `minutes` of wall time have passed since the last save (or since this
    session began, as a resumed session's state is fresh); 0 makes every epoch due. `clock` gives seconds."""

    def __init__(self, minutes: float, clock: Callable[[], float] | None = None) -> None:
        if not minutes >= 0:  # also NaN
            raise ValueError(f"checkpoint_minutes must be 0 or more, got {minutes}")
        self.seconds = 60.0 * minutes
        self.clock = clock or time.monotonic  # monotonic: a clock set back or forward moves no save
        self.last = self.clock()

    def due(self) -> bool:
        return self.clock() - self.last >= self.seconds

    def saved(self) -> None:
        """Count the time to the next save from the end of this one (a slow disk never makes saves back to back)."""
        self.last = self.clock()


@contextlib.contextmanager
def averaged(average: WeightAverage | None):
    """The model holds the averaged weights inside the block (nothing changes without an average)."""
    if average is None:
        yield
        return
    average.swap()
    try:
        yield
    finally:
        average.swap()


CURVE_SEED = 0  # the learning curve's test subset is the same for every run, seed and recipe


def curve_subset(loader: Loader | None, images: int) -> Loader | None:
    """The test loader of the learning curve: a fixed random subset of `images` test images (seeded independently
    of the run), or the whole loader when `images` is 0 or covers it."""
    if loader is None or images == 0 or images >= loader.num_samples:
        return loader
    generator = torch.Generator().manual_seed(CURVE_SEED)
    positions = torch.randperm(loader.num_samples, generator=generator)[:images].sort().values
    return loader.subset(positions)


def train_epoch(
    step: TrainStep,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loader: Loader,
    epoch: int,
    bar: Progress,
    *,
    desc: str,
    lr: float,
    average: WeightAverage | None = None,
) -> float:
    """One epoch of optimisation steps (each followed by an update of the weight average, when there is one);
    returns the mean training loss, or raises DivergenceError when a loss or, at the end, a parameter is not
    finite."""
    watch = LossWatch(desc, epoch + 1, lr)
    for images, labels in loader.epoch(epoch):
        watch.add(step(images, labels))
        scheduler.step()
        if average is not None:
            average.update()
        bar.update(1)
    watch.check()
    check_finite_parameters(step.model, desc, epoch + 1, watch.steps, lr)
    return watch.total / max(1, watch.steps)


class LossWatch:
    """The training losses of one epoch, checked for NaN/inf every `CHECK_EVERY` steps and at the end.

    Step losses stay on the device until a check, which moves them in one transfer, so the check costs one sync per
    `CHECK_EVERY` steps and still names the first bad step exactly.
    """

    def __init__(self, desc: str, epoch: int, lr: float) -> None:
        self.desc, self.epoch, self.lr = desc, epoch, lr
        self.pending: list[torch.Tensor] = []
        self.steps = 0  # steps checked so far
        self.total = 0.0  # sum of the checked losses

    def add(self, loss: torch.Tensor) -> None:
        self.pending.append(loss)
        if len(self.pending) >= CHECK_EVERY:
            self.check()

    def check(self) -> None:
        if not self.pending:
            return
        losses = torch.stack(self.pending).float().cpu()
        bad = torch.nonzero(~torch.isfinite(losses))
        if len(bad):
            position = int(bad[0])
            what = f"loss is {losses[position].item()}"
            raise DivergenceError(self.desc, what, epoch=self.epoch, step=self.steps + position + 1, lr=self.lr)
        self.total += losses.sum().item()
        self.steps += len(self.pending)
        self.pending.clear()


@torch.no_grad()
def check_finite_parameters(model: nn.Module, desc: str, epoch: int, step: int, lr: float) -> None:
    """Raise DivergenceError when a weight or a BatchNorm statistic is NaN/inf (one device sync for all of them)."""
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    if not tensors:
        return
    finite = torch.stack([torch.isfinite(t).all() for t in tensors])
    if not bool(finite.all()):
        names = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_floating_point()]
        first = names[int(torch.nonzero(~finite.cpu())[0])]
        raise DivergenceError(desc, f"parameter {first} is not finite", epoch=epoch, step=step, lr=lr)


class _EpochLogger:
    """Per-epoch rows to summary.csv and TensorBoard scalars (when an output folder is given). A resumed run passes
    the rows of its restored epochs: summary.csv is rewritten with them, and TensorBoard hides the events a killed
    session logged after its last saved state."""

    FIELDS = ("epoch", "train_loss", "lr", "top1", "top5", "seconds", "curve_top1")

    def __init__(self, out_dir: Path | None, history: Sequence[dict[str, float]] = ()) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.writer = None
        if self.out_dir:
            from torch.utils.tensorboard import SummaryWriter

            self.out_dir.mkdir(parents=True, exist_ok=True)
            purge_step = len(history) + 1 if history else None
            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=purge_step)
            with open(self.out_dir / "summary.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(self.FIELDS)
                writer.writerows(self._cells(row) for row in history)

    def log(self, row: dict[str, float]) -> None:
        if not self.out_dir:
            return
        with open(self.out_dir / "summary.csv", "a", newline="") as f:
            csv.writer(f).writerow(self._cells(row))
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, int(row["epoch"]))

    def _cells(self, row: dict[str, float]) -> list:
        return [row.get(k, "") for k in self.FIELDS]

    def close(self) -> None:
        if self.writer:
            self.writer.close()
