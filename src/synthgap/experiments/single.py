"""One training run: a function of (config, seed) with its own folder and one line in results.jsonl.

synthgap train --train-data cifake:real --epochs 15 --out runs/real-s0

A run is known by its name and its fingerprint (a hash of its settings and of the identity of its images), as in
`synthgap run`: the same command again reports the recorded result; the same name with other settings is an error
that names what changed (or, with `rerun_changed`, the old record moves to superseded.jsonl).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from synthgap.config import save_config
from synthgap.data.config import DataConfig, load_train_test, split_identity
from synthgap.errors import SynthgapError
from synthgap.experiments.identity import fingerprint_of, what_changed
from synthgap.experiments.results import RESULTS_FILE, BaselineRecord, ResultRecord, append_result, read_results
from synthgap.experiments.runner import RUN_FILE, exclusive, supersede
from synthgap.experiments.students import curve_fields, train_from_scratch
from synthgap.io import atomic_write_json
from synthgap.models import ModelConfig, get_family
from synthgap.train.checkpoint import save_checkpoint
from synthgap.train.compute import this_process
from synthgap.train.loop import default_device
from synthgap.train.recipe import TrainRecipe


class TrainRunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None  # default: baseline-<training data>-s<seed>
    seed: int = 0
    side: Literal["real", "synthetic"] | None = None  # which side the training data is (default: from its name)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    recipe: TrainRecipe = TrainRecipe()

    def run_name(self) -> str:
        return self.name or f"baseline-{data_label(self.data.train)}-s{self.seed}"

    def training_side(self) -> str | None:
        """The side given, else the one the data reference names (cifake:real / cifake:synthetic / generated:)."""
        if self.side:
            return self.side
        source, _, argument = self.data.train.partition(":")
        if source == "cifake":
            return argument
        return "synthetic" if source == "generated" else None


def data_label(ref: str) -> str:
    """A short, path-safe label for a data reference: ``cifake:real`` → ``real``, ``folder:/x/train`` → ``train``."""
    source, _, argument = ref.partition(":")
    label = argument if source == "cifake" else Path(argument).name or source
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def train_settings(config: TrainRunConfig) -> dict:
    """Everything that determines the run's result: the config (less where files live and how many processes
    decode them), the identity of the training and test images, and this process's arithmetic (device type, threads,
    precision)."""
    data = config.data
    settings = config.model_dump(mode="json", exclude={"name": True, "data": {"data_root", "cache_dir", "workers"}})
    settings["model"]["image_size"] = data.resolution
    settings["compute"] = this_process().identity(config.recipe.precision)
    settings["images"] = {
        "train": split_identity(data, data.train, "train", data.per_class),
        "test": split_identity(data, data.test, "test", data.test_per_class),
    }
    return settings


def run_baseline(
    config: TrainRunConfig, run_dir: Path, results_dir: Path, *, progress: bool = True, rerun_changed: bool = False
) -> ResultRecord:
    """Train one student from scratch on `config.data.train`, test it, save it, record it. A run recorded with the
    same settings is returned as it is; one recorded with other settings is an error (see the module docstring)."""
    name = config.run_name()
    run_dir, results_dir = Path(run_dir), Path(results_dir)
    with exclusive(results_dir):
        settings = train_settings(config)
        fingerprint = fingerprint_of(settings)
        recorded = next((r for r in read_results(results_dir) if r.run == name), None)
        if recorded is not None and recorded.fingerprint == fingerprint:
            return recorded
        if recorded is not None and not rerun_changed:
            change = what_changed(run_dir / RUN_FILE, recorded.fingerprint, fingerprint, settings)
            raise SynthgapError(
                f"{name} is already recorded in {results_dir / RESULTS_FILE} with other settings ({change}); use "
                "another --out or --name, or --rerun-changed to move the old record to superseded.jsonl and train again"
            )
        if recorded is not None:
            supersede(results_dir, {name})
        atomic_write_json(run_dir / RUN_FILE, {"run": name, "fingerprint": fingerprint, "settings": settings})
        record = _train(config, run_dir, progress, fingerprint)
        append_result(results_dir, record)
    return record


def _train(config: TrainRunConfig, run_dir: Path, progress: bool, fingerprint: str) -> BaselineRecord:
    start = time.perf_counter()
    save_config(config, run_dir / "config.yaml")
    train, test = load_train_test(config.data, progress=progress)
    model_config = config.model.model_copy(
        update={"num_classes": len(train.classes), "image_size": config.data.resolution}
    )
    model, result = train_from_scratch(
        train,
        test,
        model_config,
        config.recipe,
        config.seed,
        run_dir=run_dir,
        progress=progress,
        desc=config.run_name(),
        device=default_device(),
        state_dir=run_dir,  # a killed training resumes from its last saved state when rerun with the same settings
        state_token=fingerprint,
        resident=config.data.resident,
    )
    record = BaselineRecord(
        run=config.run_name(),
        source=None,
        target=config.data.train,
        side=config.training_side(),
        test=config.data.test,
        model=config.model.name,
        num_layers=get_family(config.model.name).num_layers,
        n_transferred=0,
        frozen=False,
        real_fraction=1.0,
        seed=config.seed,
        epochs=config.recipe.epochs,
        top1=result.top1,
        top5=result.top5,
        train_images=result.train_images,
        seconds=max(result.seconds, time.perf_counter() - start),
        fingerprint=fingerprint,
        compute=this_process().record(config.recipe.precision, data_resident=result.data_resident),
        skipped_images=len(train.skipped) + len(test.skipped),
        classes=list(train.classes),
        augmentation=config.recipe.augmentation,
        preset=config.recipe.preset,
        tta=config.recipe.tta,
        recipe=config.recipe.model_dump(mode="json"),
        **curve_fields(result.curve, result.curve_images),
        **result.evaluation.record_fields(confusion=True),
    )
    metadata = {
        "config": config.model_dump(mode="json"),
        "model": model_config.model_dump(mode="json"),
        "classes": list(train.classes),
        **record.model_dump(mode="json"),
    }
    save_checkpoint(run_dir / "checkpoint", model, metadata)
    return record
