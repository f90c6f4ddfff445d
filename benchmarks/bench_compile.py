"""`recipe.compile` on this CPU: the training step's img/s with and without `torch.compile`, on random batches.

    python -m benchmarks.bench_compile                 # half-width CIFAR-stem ResNet-18, 32 px, batch 128
    python -m benchmarks.bench_compile --width 1.0 --pairs 3

Not part of `make bench` (the compile alone takes a minute or more on two cores). Both sides are built from the same
seed and warmed up first (the compiled side's warm-up is its compilation, timed apart), then timed in interleaved
pairs (plain, compiled, plain, compiled, ...) so that other load on the machine falls on both; the ratio is the median
of the pairs' ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from benchmarks.common import interleaved, report, step_rate
from synthgap.models import ModelConfig, build_model
from synthgap.train.compute import PRECISION_NAMES, processor_kind
from synthgap.train.loop import TrainStep, autocast_dtype, build_optimizer, compiled
from synthgap.train.recipe import TrainRecipe


def make_step(config: ModelConfig, recipe: TrainRecipe, compile_step: bool) -> TrainStep:
    torch.manual_seed(0)
    model = build_model(config).to(memory_format=torch.channels_last)
    return TrainStep(compiled(model, compile_step), build_optimizer(model, recipe), recipe, torch.device("cpu"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed side of a pair")
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args(argv)

    recipe = TrainRecipe(preset="fast", batch_size=args.batch_size)
    dtype = autocast_dtype(recipe.precision, torch.device("cpu"))
    print(f"processor: {processor_kind()}, precision {PRECISION_NAMES[dtype]}, {torch.get_num_threads()} threads")
    config = ModelConfig(width=args.width, image_size=32)
    images = torch.randn(args.batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (args.batch_size,))
    plain, fast = make_step(config, recipe, False), make_step(config, recipe, True)
    plain(images, labels)
    start = time.perf_counter()
    fast(images, labels)
    fast(images, labels)  # a second call: a recompile after the first step would show here
    report("compile_seconds", time.perf_counter() - start, "s")
    plain_rate, fast_rate, ratios = interleaved(
        partial(step_rate, plain, images, labels, args.steps),
        partial(step_rate, fast, images, labels, args.steps),
        args.pairs,
    )
    report("train_step_plain", plain_rate, "img/s")
    report("train_step_compiled", fast_rate, "img/s")
    report("compile_speedup", statistics.median(ratios), f"x (pairs {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
