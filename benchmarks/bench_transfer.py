"""Layer-transfer speed: the frozen-prefix cache (full-width ResNet-18, 32 px, CIFAKE images).

- stage2_n16_cached_speedup: a whole stage-2 run with N = 16 frozen and prefix outputs cached (feature pass
  included) vs training all 18 layers for the same epochs on the same images (target >= 10).
- sweep_vs_full_trainings: one direction of a sweep, N = 1..17 (cached prefix where N <= 17), vs 17 full
  trainings (target <= 0.4).
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import cifake_train_real, report
from synthgap.data.subsets import stratified_positions
from synthgap.experiments.transfer import TransferSetup, build_student, train_student
from synthgap.models import ModelConfig, build_model, get_family
from synthgap.train.recipe import TrainRecipe

# The ImageNet stem, as when the figures in benchmarks/README.md were recorded (the default at 32 px is now the CIFAR
# stem: ~15x the arithmetic per image; bench_converge.py measures that student).
STEM = "imagenet"

PER_CLASS = 100  # 1,000 training images, 200 test images
EPOCHS = 4  # stage 2 of configs/cifake-layers.yaml
RECIPE = TrainRecipe(epochs=EPOCHS, warmup_epochs=0, augmentation="none")
FAMILY = get_family("resnet18")
LAST = FAMILY.num_layers - 1  # the deepest N a stage 2 trains anything at (17 of 18)


def images():
    data = cifake_train_real()
    labels = data.labels.numpy()
    train = data.select(stratified_positions(labels, data.classes, per_class=PER_CLASS, seed=0))
    test = data.select(stratified_positions(labels, data.classes, per_class=20, seed=1))
    return train, test


def timed_stage2(n: int, train, test) -> tuple[float, float]:
    """(seconds of the whole stage-2 run incl. the prefix feature pass, seconds of its training loop alone)."""
    torch.manual_seed(0)
    source, fresh = build_model(ModelConfig(stem=STEM)), build_model(ModelConfig(stem=STEM))
    setup = TransferSetup(n=n)
    student = build_student(source, fresh, setup, FAMILY)
    start = time.perf_counter()
    result = train_student(student, setup, train, test, RECIPE, seed=0, family=FAMILY, progress=False)
    return time.perf_counter() - start, result.fit.seconds


def main() -> None:
    train, test = images()
    timed_stage2(0, train, test)  # warm-up
    # The two sides interleaved: a full training (N = 0, every layer trained) between every few sweep runs, so a
    # change in machine load hits the sweep and its reference alike; the fastest full training is the reference.
    full: list[tuple[float, float]] = []
    sweep = 0.0
    for n in range(1, LAST + 1):
        if n % 4 == 1:
            full.append(timed_stage2(0, train, test))
        sweep += timed_stage2(n, train, test)[0]
    n16 = min(timed_stage2(16, train, test) for _ in range(2))
    full.append(timed_stage2(0, train, test))
    best = min(full)
    spread = max(f[0] for f in full) / best[0]
    report("stage2_full_training_s", best[0], f"s ({EPOCHS} epochs, {len(train)} images; {len(full)} timed, "
           f"slowest/fastest {spread:.2f})")  # fmt: skip
    report("stage2_n16_cached_s", n16[0], "s (prefix feature pass included)")
    report("stage2_n16_cached_speedup", best[0] / n16[0], "x (target >= 10)")
    report("stage2_n16_training_loop_speedup", best[1] / n16[1], "x (training epochs only, feature pass excluded)")
    report(f"sweep_{LAST}_runs_s", sweep, "s")
    report("sweep_vs_full_trainings", sweep / (LAST * best[0]), "(target <= 0.4)")
