"""The memory format of a stage 2 on cached prefix outputs: one suffix training step, contiguous vs channels-last.

    python -m benchmarks.bench_suffix_format                  # quarter-width CIFAR-stem ResNet-18, N = 2, 4, 8
    python -m benchmarks.bench_suffix_format --n 4 --pairs 6

Not part of `make bench`. A layer sweep's stage 2 trains layers N+1..L on packed prefix outputs (`ResNetSuffix`),
which unpack as contiguous maps; since the suffix converts them to the format its weights are held in (what `fit`
sets from `recipe.channels_last`), the suffix convolves channels-last like a whole model. Both sides train the same
suffix from the same seed on the same packed features (bf16 where the recipe's `precision: auto` gives it), warmed
up first, then timed in interleaved pairs (contiguous, channels-last, ...): the ratio is the median of the pairs'.
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial

import torch

from benchmarks.common import interleaved, report, step_rate
from synthgap.models import ModelConfig, build_model, freeze, get_family
from synthgap.train.compute import PRECISION_NAMES, processor_kind
from synthgap.train.loop import TrainStep, autocast_dtype, build_optimizer
from synthgap.train.recipe import TrainRecipe


def suffix_step(n: int, config: ModelConfig, recipe: TrainRecipe, images: torch.Tensor, channels_last: bool):
    """(a training step of layers n+1..L, the packed features of `images` it trains on)."""
    torch.manual_seed(0)
    model = build_model(config)
    prefix, suffix = get_family(config.name).split(model, n)
    with torch.no_grad():
        features = prefix.eval()(images)
    freeze(model, n, get_family(config.name).layer_map)  # layers 1..n, as stage 2 freezes them
    if channels_last:
        suffix.to(memory_format=torch.channels_last)
    step = TrainStep(suffix, build_optimizer(suffix, recipe), recipe, torch.device("cpu"))
    return step, features


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed side of a pair")
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args(argv)

    recipe = TrainRecipe(preset="fast", batch_size=args.batch_size)
    dtype = autocast_dtype(recipe.precision, torch.device("cpu"))
    print(f"processor: {processor_kind()}, precision {PRECISION_NAMES[dtype]}, {torch.get_num_threads()} threads")
    config = ModelConfig(width=args.width, image_size=32, stem="cifar")
    images = torch.randn(args.batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 10, (args.batch_size,), generator=torch.Generator().manual_seed(2))
    for n in args.n:
        plain, features = suffix_step(n, config, recipe, images, channels_last=False)
        fast, _ = suffix_step(n, config, recipe, images, channels_last=True)
        for step in (plain, fast):
            step_rate(step, features, labels, 2)  # warm-up: oneDNN builds its kernels for these shapes
        plain_rate, fast_rate, ratios = interleaved(
            partial(step_rate, plain, features, labels, args.steps),
            partial(step_rate, fast, features, labels, args.steps),
            args.pairs,
        )
        report(f"suffix_n{n}_contiguous", plain_rate, "img/s")
        report(f"suffix_n{n}_channels_last", fast_rate, "img/s")
        pairs = ", ".join(f"{r:.2f}" for r in ratios)
        report(f"suffix_n{n}_channels_last_speedup", statistics.median(ratios), f"x (pairs {pairs})")


if __name__ == "__main__":
    main()
