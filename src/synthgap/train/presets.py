"""Named training recipes: a preset is a set of recipe values that a spec or a command names in one word and may
override key by key (`recipe: {preset: fast, epochs: 24}`; `synthgap train --preset fast --epochs 24`).

`default` is the recipe's field defaults (a plain 15-epoch cosine schedule). `fast` is a CIFAR-style speed recipe
for small images (32 px): batch 512, nesterov SGD, a triangular learning rate (linear warm-up to its peak at 20 % of
the steps, then linear decay to zero), label smoothing 0.2, no weight decay on BatchNorm weights and biases,
crop-with-padding + flip, and flip test-time augmentation — the ingredients of the public CIFAR-10 speed recipes.
Its learning rate follows the linear rule: 0.4 at batch 512, so `batch_size: 128` trains at 0.1. Students are
evaluated every epoch on a fixed 2,000-image subset of the test set, so each record keeps its learning curve.
What each ingredient is worth was measured (benchmarks/README.md, "Converged students").

`fast_imagenet` is its 224 px counterpart after the public fast ImageNet ResNet-18 recipes: 16 epochs, batch 512 at
a learning rate of 1.0 (0.5 per 256 images), a triangular schedule peaking after 2 epochs, label smoothing 0.1,
weight decay 5e-5 (none on norms and biases), random-resized crops and flip TTA. Those recipes also train at a lower,
growing resolution and test at full resolution; synthgap trains and tests at one resolution, so this preset spends
somewhat more per epoch than they do.
"""

from __future__ import annotations

from typing import Any

from synthgap.registry import Registry

RECIPE_PRESETS: Registry[dict[str, Any]] = Registry("recipe preset")

RECIPE_PRESETS.add("default", {})
RECIPE_PRESETS.add(
    "fast",
    {
        "epochs": 16,
        "batch_size": 512,
        "lr": 0.4,
        "lr_reference_batch": 512,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "decay_norm_and_bias": False,
        "schedule": "triangular",
        "peak": 0.2,
        "label_smoothing": 0.2,
        "augmentation": "standard",
        "tta": "flip",
        "eval_every": 1,
        "eval_images": 2000,
    },
)
RECIPE_PRESETS.add(
    "fast_imagenet",
    {
        "epochs": 16,
        "batch_size": 512,
        "lr": 1.0,
        "lr_reference_batch": 512,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-5,
        "decay_norm_and_bias": False,
        "schedule": "triangular",
        "peak": 0.125,
        "label_smoothing": 0.1,
        "augmentation": "rrc",
        "tta": "flip",
        "eval_every": 1,
        "eval_images": 5000,
    },
)
