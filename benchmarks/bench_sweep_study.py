"""What a layer sweep costs at a study's own size: each stage-2 run's wall time against the sweep's full training
(N = 0, every layer trained, same recipe and data) and against its share of the arithmetic.

    python -m benchmarks.bench_sweep_study runs/cifake-layers   # after synthgap run configs/cifake-layers.yaml
    python -m benchmarks.bench_sweep_study runs/cifake-layers --seed 1

Nothing is trained here: the figures come from the `seconds` of a finished sweep's records, so they describe stage 2
at the size a study runs it (the spec's images, epochs and evaluations), and the reference is a whole training of
that size rather than a few seconds of one. A stage-2 run with layers 1..N frozen computes their outputs once
(the prefix cache) and then trains layers N+1..L, so its arithmetic is

    cost(N) = epochs · train · 3 · MAC(N+1..L)                       training: forward + backward of the suffix
            + (train + views · test) · MAC(1..N)                     the prefix's one feature pass
            + (evaluations · curve + test) · views · MAC(N+1..L)     learning-curve and final evaluations

(views: the test-time augmentation's views per test image, 2 with flip)

and cost(0) is the same with MAC(1..L) everywhere and no feature pass. cost(N) / cost(0), the run's MAC share, is
what its time relative to N = 0 would be if every layer ran at the same FLOP rate. It is not a bound: narrow early
layers on large maps (16 channels on 32×32 at quarter width) reach a lower FLOP rate than the late ones, so a late
cut can run faster than its share; a cut that runs much slower than its share is where time is lost.
Printed per direction: a table of N, seconds, measured ratio, MAC share and their quotient, and the summary figures
`stage2_n16_speedup` (time(0) / time(16)) and `sweep_vs_full_trainings` (the sweep's time over as many full
trainings), each beside the MAC share's value. Wall times include whatever else ran on the machine.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import yaml

from benchmarks.bench_converge import module_macs
from benchmarks.common import report
from synthgap.data.sources import open_source
from synthgap.experiments.results import read_results
from synthgap.models import ModelConfig, build_model, get_family
from synthgap.train.tta import tta_views


def layer_macs(config: ModelConfig) -> dict[int, int]:
    """Multiply-accumulates of one image's forward pass per numbered layer of the family's layer map."""
    layer_of = {name: layer for layer, names in get_family(config.name).layer_map.items() for name in names}

    def owner(name: str) -> int | None:  # the layer whose module holds `name` (a downsample's conv, say)
        while name:
            if name in layer_of:
                return layer_of[name]
            name = name.rpartition(".")[0]
        return None

    macs: dict[int, int] = defaultdict(int)
    for name, count in module_macs(build_model(config), config.image_size).items():
        if (layer := owner(name)) is not None:
            macs[layer] += count
    return dict(macs)


def stage2_cost(n: int, macs: dict[int, int], *, epochs: int, train: int, test: int, curve: int, views: int) -> float:
    """The arithmetic of a stage-2 run with layers 1..n frozen and cached (n = 0: nothing frozen), in MACs."""
    prefix = sum(v for layer, v in macs.items() if layer <= n)
    suffix = sum(v for layer, v in macs.items() if layer > n)
    feature_pass = (train + views * test) * prefix if n > 0 else 0
    evaluations = (epochs * curve + test) * views * suffix
    return epochs * train * 3 * suffix + feature_pass + evaluations


def spec_settings(folder: Path) -> tuple[ModelConfig, dict, int]:
    """The model, the resolved recipe keys and the number of test images, from the study folder's spec.yaml."""
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    data = spec["data"]
    counts = open_source(data["test"], "test", data.get("data_root")).counts()
    per_class = data.get("test_per_class")
    test = sum(min(per_class, c) for c in counts.values()) if per_class else sum(counts.values())
    recipe = dict(spec["recipe"])  # a results folder keeps the resolved spec: every recipe key is there
    return ModelConfig(**spec["model"]), recipe, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a finished layer sweep's results folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config, recipe, test = spec_settings(args.folder)
    macs = layer_macs(config)
    records = [r for r in read_results(args.folder) if r.kind == "layer_transfer" and r.seed == args.seed]
    if not records:
        raise SystemExit(f"no layer_transfer records of seed {args.seed} in {args.folder}")
    views = len(tta_views(recipe.get("tta") or "none"))
    every = recipe.get("eval_every") or 0
    directions: dict[str, dict[int, object]] = defaultdict(dict)
    for record in records:
        directions[f"{record.source_side}_to_{record.side}"][record.n_transferred] = record
    for direction, by_n in sorted(directions.items()):
        if 0 not in by_n:
            print(f"{direction}: no N = 0 run, no reference")
            continue
        base = by_n[0]
        curve = min(recipe.get("eval_images") or test, test)
        evaluations = base.epochs // every if every else 0  # the last epoch's is the final evaluation
        # stage2_cost counts `epochs` curve evaluations: spread the ones made over the epochs
        sizes = dict(epochs=base.epochs, train=base.train_images, test=test, views=views,
                     curve=curve * evaluations // base.epochs)  # fmt: skip
        reference = stage2_cost(0, macs, **sizes)
        print(
            f"\n{direction} (seed {args.seed}; {base.train_images} images, {base.epochs} epochs; N = 0: "
            f"{base.seconds:.0f} s)"
        )
        print("| N | seconds | time / time(N=0) | MAC share | share / measured |")
        print("|---|---|---|---|---|")
        measured_sum = share_sum = 0.0
        for n in sorted(by_n):
            ratio = by_n[n].seconds / base.seconds
            share = stage2_cost(n, macs, **sizes) / reference
            measured_sum += ratio
            share_sum += share
            print(f"| {n} | {by_n[n].seconds:.0f} | {ratio:.3f} | {share:.3f} | {share / ratio:.2f} |")
        if 16 in by_n:
            share16 = reference / stage2_cost(16, macs, **sizes)
            speedup = base.seconds / by_n[16].seconds
            report(f"{direction}_stage2_n16_speedup", speedup, f"x (the MAC share gives {share16:.1f})")
        count = len(by_n)
        report(
            f"{direction}_sweep_vs_full_trainings",
            measured_sum / count,
            f"({count} runs of N = {sorted(by_n)}; MAC share {share_sum / count:.2f})",
        )


if __name__ == "__main__":
    main()
