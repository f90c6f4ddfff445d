"""Time to accuracy: wall-clock minutes for a student trained on CIFAKE's 30,000 real training images to reach a
top-1 target on the real test images, and how close its training step runs to the CPU's FLOP bound.

    python -m benchmarks.bench_converge --preset fast --out runs/converge            # ~25 min on 2 bf16 cores
    python -m benchmarks.bench_converge --preset default --epochs 16 --out runs/converge   # the same budget

Not part of `make bench` (a run takes tens of minutes). Each call trains one student through `synthgap run` (the
same runner, model cache and records as a study: a later spec with the same settings reuses the student) with the
learning curve on a fixed 2,000-image test subset after every epoch, then prints:
- the minutes of training (wall clock, evaluations included) until the curve first reached each target, or
  "not reached", and the final top-1 on all 10,000 real test images;
- the training step's img/s on random batches against the bound that the CPU's measured convolution throughput in
  the same precision sets (3 × the forward pass's multiply-accumulates × 2 FLOPs per image), and where the step's
  time goes (convolutions forward and backward, BatchNorm, ReLU, the rest), from the profiler.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from benchmarks.common import report
from synthgap import api
from synthgap.models import ModelConfig, build_model
from synthgap.train.compute import PRECISION_NAMES, processor_kind
from synthgap.train.loop import TrainStep, autocast, autocast_dtype, build_optimizer
from synthgap.train.recipe import TrainRecipe

TARGETS = (80.0, 85.0, 90.0)


def spec(preset: str, width: float, epochs: int | None, seed: int) -> dict:
    recipe = {"preset": preset, "eval_every": 1, "eval_images": 2000}
    if epochs is not None:
        recipe["epochs"] = epochs
    return {
        "name": f"converge-{preset}",
        "data": {"real": "cifake:real", "synthetic": "cifake:synthetic", "test": "cifake:real"},
        "model": {"width": width, "stem": "auto"},
        "recipe": recipe,
        "seeds": [seed],
        "experiments": [{"kind": "baseline", "sides": ["real"]}],
    }


def minutes_to(curve: list[list[float]], target: float) -> float | None:
    """Minutes of training when the curve ([epoch, top-1, seconds] rows) first reached `target` (None: never)."""
    for _, top1, seconds in curve:
        if top1 >= target:
            return seconds / 60
    return None


def module_macs(model: nn.Module, size: int) -> dict[str, int]:
    """Multiply-accumulates of one image's forward pass in each convolution and linear layer, by module name."""
    macs: dict[str, int] = {}

    def counter(name: str):
        def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                macs[name] = macs.get(name, 0) + output.numel() * kh * kw * module.in_channels // module.groups
            else:
                macs[name] = macs.get(name, 0) + output.numel() * module.in_features

        return count

    hooks = [
        module.register_forward_hook(counter(name))
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return macs


def forward_macs(model: nn.Module, size: int) -> int:
    """Multiply-accumulates of one image's forward pass (convolutions and linear layers)."""
    return sum(module_macs(model, size).values())


def conv_peak_flops(dtype: torch.dtype | None, repeats: int = 5) -> float:
    """FLOP/s of a large 3×3 convolution (128 → 128 channels on 32×32 maps, batch 64, channels_last): the CPU's
    practical peak for this kind of work in this precision."""
    conv = nn.Conv2d(128, 128, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(64, 128, 32, 32).to(memory_format=torch.channels_last)
    flops = 2 * 64 * 32 * 32 * 128 * 128 * 9
    best = float("inf")
    with torch.no_grad(), autocast(torch.device("cpu"), dtype):
        conv(x)
        for _ in range(repeats):
            start = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - start)
    return flops / best


def warm_step(config: ModelConfig, recipe: TrainRecipe) -> Callable[[], object]:
    """The recipe's training step on one fixed random batch, run once already (oneDNN picks its kernels then)."""
    torch.manual_seed(0)
    model = build_model(config).to(memory_format=torch.channels_last)
    step = TrainStep(model, build_optimizer(model, recipe), recipe, torch.device("cpu"))
    images = torch.randn(recipe.batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
    labels = torch.randint(0, config.num_classes, (recipe.batch_size,))
    step(images, labels)
    return lambda: step(images, labels)


def step_rate(config: ModelConfig, recipe: TrainRecipe, steps: int = 4) -> float:
    """img/s of the recipe's training step on one random batch (the arithmetic alone)."""
    run_step = warm_step(config, recipe)
    start = time.perf_counter()
    for _ in range(steps):
        run_step()
    return steps * recipe.batch_size / (time.perf_counter() - start)


# Which aten operators make up each part of the step, matched against the profiler's self-CPU time by name.
STEP_PARTS = {
    "conv_forward": ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution"),
    "conv_backward": ("aten::convolution_backward",),
    "batchnorm_forward": ("aten::native_batch_norm", "aten::_batch_norm_impl_index"),
    "batchnorm_backward": ("aten::native_batch_norm_backward",),
    "relu": ("aten::clamp_min_", "aten::relu_", "aten::threshold_backward"),
}


def step_shares(config: ModelConfig, recipe: TrainRecipe, steps: int = 3) -> dict[str, float]:
    """Share (%) of the training step's CPU time in convolutions forward and backward, BatchNorm forward and
    backward and ReLU, the rest (optimizer, residual adds, casts, loss) as `other`: where the step's time goes when
    it runs far below the convolution bound."""
    from torch.profiler import ProfilerActivity, profile

    run_step = warm_step(config, recipe)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            run_step()
    self_us = {event.key: event.self_cpu_time_total for event in prof.key_averages()}
    total = sum(self_us.values())
    shares = {part: 100 * sum(self_us.get(name, 0) for name in names) / total for part, names in STEP_PARTS.items()}
    shares["other"] = 100 - sum(shares.values())
    return shares


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/converge"))
    parser.add_argument("--bound-only", action="store_true", help="only the FLOP-bound figures (seconds)")
    args = parser.parse_args(argv)

    raw = spec(args.preset, args.width, args.epochs, args.seed)
    recipe = TrainRecipe.model_validate(raw["recipe"])
    dtype = autocast_dtype(recipe.precision, torch.device("cpu"))
    config = ModelConfig(width=args.width, image_size=32)
    print(f"processor: {processor_kind()}, precision {PRECISION_NAMES[dtype]}, {torch.get_num_threads()} threads")
    macs = forward_macs(build_model(config), 32)
    peak = conv_peak_flops(dtype)
    rate = step_rate(config, recipe)
    bound = peak / (6 * macs)
    report("forward_mmac_per_image", macs / 1e6, "M")
    report("conv_peak", peak / 1e9, "GFLOP/s")
    report("train_step", rate, "img/s")
    report("train_step_flop_bound", bound, "img/s")
    report("train_step_vs_bound", rate / bound)
    for part, share in step_shares(config, recipe).items():
        report(f"step_share_{part}", share, "%")
    if args.bound_only:
        return

    out = args.out / f"{args.preset}-w{args.width:g}-e{recipe.epochs}-s{args.seed}"
    (record,) = [r for r in api.run_records(raw, out) if r.kind == "baseline"]
    for target in TARGETS:
        minutes = minutes_to(record.curve or [], target)
        print(f"minutes_to_{target:g}: {'not reached' if minutes is None else f'{minutes:.1f}'}", flush=True)
    report("final_top1", record.top1, "%")
    report("training_minutes", record.seconds / 60, "min")
    points = ", ".join(f"{epoch:g}:{top1:.1f}" for epoch, top1, _ in record.curve or [])
    print(f"curve (epoch:top-1 on 2,000 test images): {points}", flush=True)


if __name__ == "__main__":
    main()
