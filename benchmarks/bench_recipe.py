"""What each ingredient of the `fast` recipe preset is worth: the preset with one ingredient taken out (or one added),
against today's default recipe, at one budget (same student, images, epochs and batch size).

    python -m benchmarks.bench_recipe --per-class 500 --epochs 10 --out runs/recipe-ablation   # ~15 min, 2 cores

Not part of `make bench` (minutes per variant). Every variant trains a quarter-width ResNet-18 (CIFAR stem) on the
same class-stratified real CIFAKE training images with the same seed and is tested on the same real test images;
the batch is 128 for all (the fast preset's learning rate follows its linear rule: 0.1 at 128). Prints a Markdown
table: final top-1, the learning curve's top-1 halfway, and the training seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthgap import api

VARIANTS: dict[str, dict] = {
    "default recipe": {"preset": "default"},
    "fast": {},
    "fast, no flip TTA": {"tta": "none"},
    "fast, no label smoothing": {"label_smoothing": 0.0},
    "fast, cosine schedule (same peak)": {"schedule": "cosine"},
    "fast, decay on norms and biases": {"decay_norm_and_bias": True},
    "fast + weight average (EMA 0.99)": {"ema_decay": 0.99},
}


def variant_recipe(changes: dict, epochs: int, batch: int) -> dict:
    recipe = {"preset": "fast", "eval_every": 1, "eval_images": 2000, **changes, "epochs": epochs, "batch_size": batch}
    return {f"recipe.{key}": value for key, value in recipe.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=Path("runs/recipe-ablation"))
    args = parser.parse_args(argv)

    rows = []
    for number, (label, changes) in enumerate(VARIANTS.items()):
        record = api.train(
            "cifake:real",
            out=args.out,
            name=f"v{number}",
            per_class=args.per_class,
            test_per_class=args.test_per_class,
            width=args.width,
            stem="auto",
            overrides=variant_recipe(changes, args.epochs, args.batch_size),
        )
        curve = record.curve or []
        half = next((top1 for epoch, top1, _ in curve if epoch >= args.epochs // 2), float("nan"))
        rows.append((label, record.top1, half, record.seconds))
        print(f"{label}: top-1 {record.top1:.2f} (halfway {half:.1f}), {record.seconds:.0f} s", flush=True)
    print(f"\n| recipe | top-1 (%) after {args.epochs} epochs | top-1 halfway (curve) | seconds |")
    print("|---|---|---|---|")
    for label, top1, half, seconds in rows:
        print(f"| {label} | {top1:.2f} | {half:.1f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
