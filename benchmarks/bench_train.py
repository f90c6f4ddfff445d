"""Training throughput of the full-width ResNet-18 at 32 px (batch 128, fp32 unless the CPU has native bf16).

- train_e2e_vs_compute: `fit` (loader, augmentation, schedule, progress bar) vs the same `TrainStep` looping over
  the same batches made beforehand and kept in memory — what the project's loop costs on top of the arithmetic
  (target >= 0.90; bound 1). The sides alternate in pairs (reference, fit, reference, fit, ...) and the median of the
  pairs' ratios is reported with their range: timed minutes apart, a busy machine read 1.07.
- frozen16_speedup: steps with layers 1..16 frozen vs all layers trained (target >= 3).
"""

from __future__ import annotations

import statistics

import torch

from benchmarks.common import best_rate, cifake_train_real, report
from synthgap.data.loader import TensorLoader
from synthgap.data.subsets import stratified_positions
from synthgap.data.transforms import build_augmentation, get_normalization
from synthgap.models import ModelConfig, build_model, freeze, get_family
from synthgap.train.loop import TrainStep, build_optimizer, default_device, fit
from synthgap.train.recipe import TrainRecipe

# The ImageNet stem, as when the figures in benchmarks/README.md were recorded (the default at 32 px is now the CIFAR
# stem: ~15x the arithmetic per image; bench_converge.py measures that student).
STEM = "imagenet"

BATCH = 128
STEPS = 24
PAIRS = 4
RECIPE = TrainRecipe(epochs=1, batch_size=BATCH, warmup_epochs=0)


def model(frozen: int = 0) -> torch.nn.Module:
    torch.manual_seed(0)
    student = build_model(ModelConfig(width=1.0, stem=STEM))
    if frozen:
        freeze(student, frozen, get_family("resnet18").layer_map)
    return student.to(memory_format=torch.channels_last)


def compute_only_rate(frozen: int = 0, batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> float:
    """img/s of `TrainStep` alone over pre-made batches in memory (the real batches `fit` sees when given; else one
    random batch repeated): the arithmetic without loading, augmentation, schedule or progress."""
    student = model(frozen)
    device = default_device()
    student.to(device)
    step = TrainStep(student, build_optimizer(student, RECIPE), RECIPE, device)
    if batches is None:
        images = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        batches = [(images, torch.randint(0, 10, (BATCH,)))] * STEPS
    step(*batches[0])  # warm-up

    def steps() -> int:
        for images, labels in batches:
            step(images, labels)
        return len(batches) * BATCH

    return best_rate(steps, repeats=1)


def bench_loader() -> TensorLoader:
    data = cifake_train_real()
    data = data.select(stratified_positions(data.labels.numpy(), data.classes, per_class=STEPS * BATCH // 10))
    return TensorLoader(
        data,
        batch_size=BATCH,
        normalization=get_normalization("imagenet"),
        augmentation=build_augmentation("standard"),
        shuffle=True,
        drop_last=True,
        channels_last=True,
    )


def end_to_end_rate(loader: TensorLoader) -> float:
    def one_fit() -> int:
        fit(model(), loader, None, RECIPE, progress=True, desc="bench fit")
        return len(loader) * BATCH

    return best_rate(one_fit, repeats=1)


def main() -> None:
    loader = bench_loader()
    batches = list(loader.epoch(0))  # the reference trains on the very batches fit sees, already made
    fit(model(), loader, None, RECIPE, progress=False)  # warm-up
    full, e2e = [], []
    for _ in range(PAIRS):  # interleaved pairs, so a change in machine load hits both sides alike
        full.append(compute_only_rate(batches=batches))
        e2e.append(end_to_end_rate(loader))
    ratios = sorted(e / f for e, f in zip(e2e, full, strict=True))
    frozen = compute_only_rate(frozen=16)
    report("train_compute_only_img_per_s", max(full), "img/s")
    report("train_e2e_img_per_s", max(e2e), "img/s")
    report("train_e2e_vs_compute", statistics.median(ratios), f"median of {PAIRS} interleaved pairs "
           f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.90, bound 1)")  # fmt: skip
    report("train_frozen16_img_per_s", frozen, "img/s")
    report("frozen16_speedup", frozen / compute_only_rate(), "x (target >= 3)")


if __name__ == "__main__":
    main()
