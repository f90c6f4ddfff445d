"""What the remedies cost on top of a plain synthetic student (the students of configs/cifake-remedies.yaml:
quarter-width ResNet-18, 32 px, 500 CIFAKE synthetic images per class, batch 128).

- distill_live_vs_s: a distillation student whose teacher (an R-sized ResNet-18) runs on each augmented batch vs the
  plain S student, same images, epochs and `standard` augmentation (target <= 1.5).
- distill_cached_vs_s: without augmentation the teacher's logits are computed once (that pass included) vs the plain
  S student without augmentation (target <= 1.1).
- curation_scoring_vs_s_pct: scoring all 30,000 CIFAKE synthetic training images with the teacher (confidence and
  agreement come from one pass) and, separately, the real_knn score (also the 5,000 real images' features and the
  k-NN radii) vs one S training on those 30,000 images for the recipe's 4 epochs (target <= 5 %).

The two sides of each ratio are timed alternately (A, B, A, B) and the best of each is kept, so load on a shared
machine hits both alike; the spread (slowest / fastest repeat) is printed with each side.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_remedies.py [distillation|curation]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report  # noqa: E402
from synthgap.data.cache import load_images  # noqa: E402
from synthgap.data.sources import open_source  # noqa: E402
from synthgap.data.subsets import stratified_positions  # noqa: E402
from synthgap.data.transforms import get_normalization  # noqa: E402
from synthgap.experiments.kinds.curation import knn_precision_scores, teacher_outputs  # noqa: E402
from synthgap.models import ModelConfig, build_model, get_family  # noqa: E402
from synthgap.train.distill import DistillationLoss, distillation_targets, teacher_logits  # noqa: E402
from synthgap.train.loaders import recipe_loaders  # noqa: E402
from synthgap.train.loop import fit  # noqa: E402
from synthgap.train.recipe import TrainRecipe  # noqa: E402

# The ImageNet stem, as when the figures in benchmarks/README.md were recorded (the default at 32 px is now the CIFAR
# stem: ~15x the arithmetic per image; bench_converge.py measures that student).
STEM = "imagenet"

MODEL = ModelConfig(width=0.25, num_classes=10, image_size=32, stem=STEM)
EPOCHS = 4  # the recipe of configs/cifake-remedies.yaml
DEVICE = torch.device("cpu")


def interleaved(sides: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """{side: (best seconds, slowest / fastest)} with the sides timed in turn, `repeats` rounds."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, work in sides.items():
            start = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - start)
    return {name: (min(t), max(t) / min(t)) for name, t in times.items()}


def student(train, test, recipe: TrainRecipe, loss=None, targets=None) -> None:
    torch.manual_seed(0)
    model = build_model(MODEL)
    train_loader, _ = recipe_loaders(train, test, recipe, seed=0, targets=targets)
    fit(model, train_loader, None, recipe, progress=False, device=DEVICE, loss=loss)


def distillation_sides(train, test, augmentation: str) -> dict[str, Callable[[], object]]:
    recipe = TrainRecipe(epochs=EPOCHS, augmentation=augmentation, precision="fp32")
    teacher = build_model(MODEL).eval().requires_grad_(False)
    normalization = get_normalization(recipe.normalization)

    def distilled() -> None:
        logits = None
        if augmentation == "none":  # the teacher's pass over the images is part of the cost
            logits = teacher_logits(teacher, train, normalization, batch_size=recipe.eval_batch_size,
                                    precision="fp32", device=DEVICE)  # fmt: skip
        loss = DistillationLoss(None if logits is not None else teacher, temperature=4.0, alpha=0.9)
        student(train, test, recipe, loss, distillation_targets(train.labels, logits))

    return {"s": lambda: student(train, test, recipe), "distilled": distilled}


def main(only: str | None = None) -> None:
    synthetic = load_images(open_source("cifake:synthetic", "train"), 32, progress=False)
    real = load_images(open_source("cifake:real", "train"), 32, progress=False)
    labels = synthetic.labels.numpy()
    train = synthetic.select(stratified_positions(labels, synthetic.classes, per_class=500, seed=0))
    test = synthetic.select(stratified_positions(labels, synthetic.classes, per_class=20, seed=1))
    cases = (("standard", "distill_live_vs_s", 1.5), ("none", "distill_cached_vs_s", 1.1))
    for augmentation, name, target in () if only == "curation" else cases:
        timed = interleaved(distillation_sides(train, test, augmentation), repeats=2)
        for side, (seconds, spread) in timed.items():
            report(f"{name}_{side}_s", seconds, f"s ({EPOCHS} epochs, {len(train)} images, spread {spread:.2f})")
        report(name, timed["distilled"][0] / timed["s"][0], f"x (target <= {target})")

    if only == "distillation":
        return
    recipe = TrainRecipe(epochs=EPOCHS, augmentation="standard", precision="fp32")
    teacher = build_model(MODEL)
    layers = get_family(MODEL.name).layer_map
    real_part = real.select(stratified_positions(real.labels.numpy(), real.classes, per_class=500, seed=0))

    def knn() -> None:
        _, features = teacher_outputs(teacher, synthetic, recipe, DEVICE, layers)
        _, real_features = teacher_outputs(teacher, real_part, recipe, DEVICE, layers)
        knn_precision_scores(features, real_features, k=5)

    sides = {
        "s_training": lambda: student(synthetic, test, recipe),
        "confidence": lambda: teacher_outputs(teacher, synthetic, recipe, DEVICE, layers),
        "real_knn": knn,
    }
    timed = interleaved(sides, repeats=2)
    for side, (seconds, spread) in timed.items():
        report(f"curation_{side}_s", seconds, f"s ({len(synthetic)} synthetic images, spread {spread:.2f})")
    for score in ("confidence", "real_knn"):
        report(f"curation_scoring_{score}_vs_s_pct", 100 * timed[score][0] / timed["s_training"][0], "% (target <= 5)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)  # distillation | curation: one half only
