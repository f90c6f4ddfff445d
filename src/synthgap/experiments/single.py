"""One training run: a function of (config, seed) with its own folder and one line in results.jsonl.

synthgap train --train-data cifake:real --epochs 15 --out runs/real-s0
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from torch import nn

from synthgap.config import save_config
from synthgap.data.cache import ImageTensors
from synthgap.data.config import DataConfig, load_train_test
from synthgap.experiments.results import ResultRecord, append_result, read_results
from synthgap.models.resnet import ModelConfig, build_model
from synthgap.train.checkpoint import save_checkpoint
from synthgap.train.loaders import recipe_loaders
from synthgap.train.loop import FitResult, fit, seed_everything
from synthgap.train.recipe import TrainRecipe


class TrainRunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None  # default: baseline-<training data>-s<seed>
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    recipe: TrainRecipe = TrainRecipe()

    def run_name(self) -> str:
        return self.name or f"baseline-{data_label(self.data.train)}-s{self.seed}"


def data_label(ref: str) -> str:
    """A short, path-safe label for a data reference: ``cifake:real`` → ``real``, ``folder:/x/train`` → ``train``."""
    source, _, argument = ref.partition(":")
    label = argument if source == "cifake" else Path(argument).name or source
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def train_from_scratch(
    train: ImageTensors, test: ImageTensors, model_config: ModelConfig, recipe: TrainRecipe, seed: int,
    *, run_dir: Path | None, progress: bool, desc: str,
) -> tuple[nn.Module, FitResult]:  # fmt: skip
    """A freshly initialised student (seeded) trained on `train` and tested on `test`."""
    train_loader, test_loader = recipe_loaders(train, test, recipe, seed)
    seed_everything(seed)
    model = build_model(model_config.model_copy(update={"num_classes": len(train.classes)}))
    result = fit(model, train_loader, test_loader, recipe, out_dir=run_dir, progress=progress, desc=desc)
    return model, result


def run_baseline(config: TrainRunConfig, run_dir: Path, results_dir: Path, *, progress: bool = True) -> ResultRecord:
    """Train one student from scratch on `config.data.train`, test it, save it, record it (skipped if recorded)."""
    name = config.run_name()
    for record in read_results(results_dir):
        if record.run == name:
            return record
    start = time.perf_counter()
    run_dir = Path(run_dir)
    save_config(config, run_dir / "config.yaml")
    train, test = load_train_test(config.data, progress=progress)
    model, result = train_from_scratch(
        train, test, config.model, config.recipe, config.seed, run_dir=run_dir, progress=progress, desc=name
    )
    record = ResultRecord(
        run=name,
        kind="baseline",
        source=None,
        target=config.data.train,
        n_transferred=0,
        frozen=False,
        real_fraction=1.0,
        seed=config.seed,
        epochs=config.recipe.epochs,
        top1=result.top1,
        top5=result.top5,
        train_images=result.train_images,
        seconds=time.perf_counter() - start,
        test=config.data.test,
        skipped_images=len(train.skipped) + len(test.skipped),
    )
    save_checkpoint(run_dir / "checkpoint", model, {"config": config.model_dump(mode="json"), **record.model_dump()})
    append_result(results_dir, record)
    return record
