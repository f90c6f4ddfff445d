"""One training run: a function of (config, seed) with its own folder and one line in results.jsonl.

synthgap train --train-data cifake:real --epochs 15 --out runs/real-s0

A run is known by its name and its fingerprint (a hash of its settings and of the identity of its images), as in
`synthgap run`: the same command again reports the recorded result; the same name with other settings is an error
that names what changed (or, with `rerun_changed`, the old record moves to superseded.jsonl).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from synthgap.config import save_config
from synthgap.data.config import DataConfig, load_train_test, split_identity
from synthgap.errors import SynthgapError
from synthgap.experiments.cachekey import cache_key
from synthgap.experiments.identity import fingerprint_of, what_changed
from synthgap.experiments.results import RESULTS_FILE, BaselineRecord, ResultRecord, append_result, read_results
from synthgap.experiments.runner import RUN_FILE, exclusive, supersede
from synthgap.experiments.students import curve_fields, train_from_scratch
from synthgap.io import atomic_write_json
from synthgap.models import ModelConfig, get_family
from synthgap.train.checkpoint import save_checkpoint
from synthgap.train.compute import this_process
from synthgap.train.distributed import (
    ONE_NODE,
    ONE_PROCESS,
    Nodes,
    World,
    check_nproc,
    current_world,
    joined,
    launch,
    main_decides,
    rank_device,
)
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


def train_settings(config: TrainRunConfig, world: World = ONE_PROCESS) -> dict:
    """Everything that determines the run's result: the config (less where files live and how many processes
    decode them), the identity of the training and test images, and this process's arithmetic (device type, threads,
    precision, and the number of training processes when there are several)."""
    data = config.data
    settings = config.model_dump(mode="json", exclude={"name": True, "data": {"data_root", "cache_dir", "workers"}})
    settings["model"]["image_size"] = data.resolution
    settings["compute"] = compute_identity(config.recipe.precision, world)
    settings["images"] = {
        "train": split_identity(data, data.train, "train", data.per_class),
        "test": split_identity(data, data.test, "test", data.test_per_class),
    }
    return settings


def train_baseline(
    config: TrainRunConfig,
    results_dir: Path,
    *,
    nproc: int = 1,
    nodes: Nodes = ONE_NODE,
    progress: bool = True,
    rerun_changed: bool = False,
) -> ResultRecord | None:
    """`run_baseline` into `results_dir`/<run name>, as `nproc` processes (DistributedDataParallel) when asked, on
    each of `nodes` (every machine runs the same call; `results_dir` must be a folder they all see at that path).

    From a single process with `nproc` > 1 or several nodes, the run is launched as `synthgap train --config ...
    --nproc N` on this machine (the config written beside the results while it runs) and its record read back; each
    launched process lands here again, knows its place from the launcher (`train.distributed.current_world`) and
    trains its share."""
    world = current_world()
    results_dir = Path(results_dir)
    if world.distributed:
        if world.size != nproc * nodes.count:
            raise SynthgapError(
                f"--nproc {nproc} on {nodes.count} machine(s), but this process was launched as one of {world.size}"
            )
        run_dir = results_dir / config.run_name()
        with joined(world, rank_device(world, default_device())):
            return run_baseline(
                config, run_dir, results_dir, progress=progress, rerun_changed=rerun_changed, world=world
            )
    nodes.check()
    check_nproc(nproc, config.recipe.sync_bn, nodes.count)
    if nproc == 1 and nodes.count == 1:
        run_dir = results_dir / config.run_name()
        return run_baseline(config, run_dir, results_dir, progress=progress, rerun_changed=rerun_changed)
    train_settings(config)  # the data exist and hold what the config asks, told here in one line, not by each process
    results_dir.mkdir(parents=True, exist_ok=True)
    # this machine's own copy of the config: another machine's launcher removes its own when its processes end
    spec = results_dir / f".{config.run_name()}.launch.{uuid.uuid4().hex[:12]}.yaml"
    save_config(config, spec)
    argv = ["train", "--config", str(spec), "--out", str(results_dir), "--nproc", str(nproc)]
    argv += ["--nnodes", str(nodes.count)] if nodes.count > 1 else []
    argv += ["--rerun-changed"] * rerun_changed + ["--quiet"] * (not progress)
    if nodes.count > 1:  # every machine must name the same rendezvous: derived from where the run is recorded
        run_id = cache_key({"results": str(results_dir.resolve()), "run": config.run_name()})
        nodes = replace(nodes, run_id=f"synthgap-{run_id}")
    try:
        launch(nproc, argv, nodes)
    finally:
        spec.unlink(missing_ok=True)
    record = next((r for r in read_results(results_dir) if r.run == config.run_name()), None)
    if record is None:  # the processes ended well, yet wrote nothing: never report a run that is not recorded
        raise SynthgapError(
            f"the {nproc * nodes.count} training processes ended without recording {config.run_name()}"
            + (f" in {results_dir} (is it a folder every machine sees?)" if nodes.count > 1 else "")
        )
    return record


def compute_identity(precision: str, world: World) -> dict:
    return replace(this_process(), processes=world.size).identity(precision)


def compute_record(precision: str, world: World, data_resident: bool | None) -> dict:
    return replace(this_process(), processes=world.size).record(precision, data_resident=data_resident)


def run_baseline(
    config: TrainRunConfig,
    run_dir: Path,
    results_dir: Path,
    *,
    progress: bool = True,
    rerun_changed: bool = False,
    world: World = ONE_PROCESS,
) -> ResultRecord | None:
    """Train one student from scratch on `config.data.train`, test it, save it, record it. A run recorded with the
    same settings is returned as it is; one recorded with other settings is an error (see the module docstring).

    In a run of several processes (`world`) every process calls this; only the main one writes and returns the
    record (the others return None)."""
    name = config.run_name()
    run_dir, results_dir = Path(run_dir), Path(results_dir)
    device = rank_device(world, default_device())
    if not world.main:  # the main process holds the folder's lock for the whole training and decides; write nothing
        fingerprint = fingerprint_of(train_settings(config, world))
        if main_decides(world, False, device):
            _train(config, run_dir, False, fingerprint, world)
        return None
    with exclusive(results_dir):
        settings = train_settings(config, world)
        fingerprint = fingerprint_of(settings)
        recorded = next((r for r in read_results(results_dir) if r.run == name), None)
        if recorded is not None and recorded.fingerprint == fingerprint:
            main_decides(world, False, device)
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
        main_decides(world, True, device)
        record = _train(config, run_dir, progress, fingerprint, world)
        append_result(results_dir, record)
    return record


def _train(
    config: TrainRunConfig, run_dir: Path, progress: bool, fingerprint: str, world: World = ONE_PROCESS
) -> BaselineRecord | None:
    start = time.perf_counter()
    if world.main:
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
        device=rank_device(world, default_device()),
        state_dir=run_dir,  # a killed training resumes from its last saved state when rerun with the same settings
        state_token=fingerprint,
        resident=config.data.resident,
        world=world,
    )
    if not world.main:
        return None
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
        compute=compute_record(config.recipe.precision, world, result.data_resident),
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
