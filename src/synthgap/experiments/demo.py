"""`synthgap demo`: the embedded default experiment — real (R) and synthetic (S) baselines on a CIFAKE slice.

Sized to finish in a few minutes on 2 CPU cores: a narrower student (width 0.5), 1,000 training images per class and
side, tested on all 10,000 real CIFAKE test images. Re-running with the same --out skips finished runs.
"""

from __future__ import annotations

from pathlib import Path

from synthgap.data.config import DataConfig
from synthgap.experiments.results import ResultRecord, read_results
from synthgap.experiments.single import TrainRunConfig, run_baseline
from synthgap.models.resnet import ModelConfig
from synthgap.report.build import build_report
from synthgap.report.tables import gap_lines
from synthgap.train.recipe import TrainRecipe

DEMO_SIDES = ("cifake:real", "cifake:synthetic")


def demo_configs(data_root: Path | None, seeds: list[int], per_class: int, epochs: int, width: float):
    for seed in seeds:
        for side in DEMO_SIDES:
            yield TrainRunConfig(
                seed=seed,
                data=DataConfig(train=side, test="cifake:real", data_root=data_root, per_class=per_class),
                model=ModelConfig(width=width),
                recipe=TrainRecipe(epochs=epochs),
            )


def run_demo(
    out: Path,
    *,
    data_root: Path | None = None,
    seeds: tuple[int, ...] = (0,),
    per_class: int = 1000,
    epochs: int = 8,
    width: float = 0.5,
    progress: bool = True,
) -> list[ResultRecord]:
    out = Path(out)
    for config in demo_configs(data_root, list(seeds), per_class, epochs, width):
        run_baseline(config, out / "runs" / config.run_name(), out, progress=progress)
    build_report(out)
    return read_results(out)


def demo_table(records: list[ResultRecord]) -> str:
    return "\n".join(gap_lines(records))
