"""Training throughput of the full-width ResNet-18 at 32 px (batch 128, fp32 unless the CPU has native bf16).

- train_e2e_vs_compute: `fit` (loader, augmentation, schedule, progress bar) vs the same `TrainStep` looping over
  pre-made in-memory random tensors — what the project's loop costs on top of the arithmetic (target >= 0.90).
- frozen16_speedup: steps with layers 1..16 frozen vs all layers trained (target >= 3).
"""

from __future__ import annotations

import torch

from benchmarks.common import best_rate, cifake_train_real, report
from synthgap.data.loader import TensorLoader
from synthgap.data.subsets import stratified_positions
from synthgap.data.transforms import build_augmentation, get_normalization
from synthgap.models import ModelConfig, build_model, freeze, get_family
from synthgap.train.loop import TrainStep, build_optimizer, default_device, fit
from synthgap.train.recipe import TrainRecipe

BATCH = 128
STEPS = 24
RECIPE = TrainRecipe(epochs=1, batch_size=BATCH, warmup_epochs=0)


def model(frozen: int = 0) -> torch.nn.Module:
    torch.manual_seed(0)
    student = build_model(ModelConfig(width=1.0))
    if frozen:
        freeze(student, frozen, get_family("resnet18").layer_map)
    return student.to(memory_format=torch.channels_last)


def compute_only_rate(frozen: int = 0) -> float:
    student = model(frozen)
    device = default_device()
    student.to(device)
    step = TrainStep(student, build_optimizer(student, RECIPE), RECIPE, device)
    images = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (BATCH,))
    step(images, labels)  # warm-up

    def steps() -> int:
        for _ in range(STEPS):
            step(images, labels)
        return STEPS * BATCH

    return best_rate(steps, repeats=2)


def end_to_end_rate() -> float:
    data = cifake_train_real()
    data = data.select(stratified_positions(data.labels.numpy(), data.classes, per_class=STEPS * BATCH // 10))
    loader = TensorLoader(
        data,
        batch_size=BATCH,
        normalization=get_normalization("imagenet"),
        augmentation=build_augmentation("standard"),
        shuffle=True,
        drop_last=True,
        channels_last=True,
    )
    fit(model(), loader, None, RECIPE, progress=False)  # warm-up

    def one_fit() -> int:
        fit(model(), loader, None, RECIPE, progress=True, desc="bench fit")
        return len(loader) * BATCH

    return best_rate(one_fit, repeats=2)


def main() -> None:
    full, e2e = [], []
    for _ in range(2):  # interleaved, so a change in machine load hits both sides alike
        full.append(compute_only_rate())
        e2e.append(end_to_end_rate())
    frozen = compute_only_rate(frozen=16)
    report("train_compute_only_img_per_s", max(full), "img/s")
    report("train_e2e_img_per_s", max(e2e), "img/s")
    report("train_e2e_vs_compute", max(e2e) / max(full), "(target >= 0.90)")
    report("train_frozen16_img_per_s", frozen, "img/s")
    report("frozen16_speedup", frozen / max(full), "x (target >= 3)")
