"""Execute a spec's runs in this process: skip finished runs, reuse cached source models, append results.

Resuming is safe at any moment of a kill: a run counts as finished only once its line is in results.jsonl (written
atomically), and a model in the cache counts only once its metadata file (written last) exists.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from torch import nn
from tqdm import tqdm

from synthgap.config import save_config
from synthgap.data.cache import ImageTensors, default_cache_dir
from synthgap.data.config import load_split
from synthgap.data.index import check_same_classes
from synthgap.data.subsets import stratified_positions
from synthgap.errors import SynthgapError
from synthgap.experiments.plan import Run, plan
from synthgap.experiments.results import ResultRecord, append_result, finished_runs, read_results
from synthgap.experiments.single import train_from_scratch
from synthgap.experiments.spec import ExperimentSpec, Side
from synthgap.experiments.transfer import TransferSetup, build_student, train_student
from synthgap.io import atomic_write_json
from synthgap.models.layers import LAYER_MAPS
from synthgap.models.resnet import build_model
from synthgap.train.checkpoint import METADATA, has_checkpoint, load_weights, save_checkpoint
from synthgap.train.loaders import eval_loader
from synthgap.train.loop import FitResult, evaluate, seed_everything
from synthgap.train.recipe import TrainRecipe


class DataStore:
    """The decoded images of a spec, loaded once per process and shared by all its runs."""

    def __init__(self, spec: ExperimentSpec, progress: bool) -> None:
        self.spec = spec
        self.progress = progress
        self._loaded: dict[str, ImageTensors] = {}

    def train(self, side: Side) -> ImageTensors:
        return self.train_ref(self.spec.data.ref(side))

    def train_ref(self, ref: str, *, all_images: bool = False) -> ImageTensors:
        """Training images of any data reference: the spec's `per_class` of each class, or all of them."""
        return self._get(ref, "train", None if all_images else self.spec.data.per_class)

    def test(self) -> ImageTensors:
        return self._get(self.spec.data.test, "test", self.spec.data.test_per_class)

    def _get(self, ref: str, split: str, per_class: int | None) -> ImageTensors:
        key = f"{ref}/{split}/{per_class}"
        if key not in self._loaded:
            self._loaded[key] = load_split(self.spec.data, ref, split, per_class, self.progress)
            classes = [t.classes for t in self._loaded.values()]
            for other in classes[1:]:
                check_same_classes(classes[0], other, what="real, synthetic and test")
        return self._loaded[key]


class ModelCache:
    """Source models keyed by (training images, model config, recipe, seed): trained once, reused across N,
    directions and specs."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def key(self, images: ImageTensors, spec: ExperimentSpec, seed: int, recipe: TrainRecipe | None = None) -> str:
        if not images.key:
            raise ValueError("images without a key cannot identify a cached model")
        # Unset optional fields are left out, so adding one keeps every existing model's key; the test-set
        # normalization only changes how a model is evaluated, not the model.
        recipe_fields = (recipe or spec.recipe).model_dump(mode="json", exclude_none=True,
                                                           exclude={"test_normalization"})  # fmt: skip
        identity = {"images": images.key, "model": spec.model.model_dump(mode="json"), "recipe": recipe_fields,
                    "seed": seed}  # fmt: skip
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]

    def path(self, key: str) -> Path:
        return self.folder / key

    def metadata(self, key: str) -> dict:
        return json.loads((self.path(key) / METADATA).read_text())

    def load(self, key: str, spec: ExperimentSpec, num_classes: int) -> tuple[nn.Module, dict]:
        model = build_model(spec.model.model_copy(update={"num_classes": num_classes}))
        return model, load_weights(model, self.path(key))


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """One runner per output folder; the OS drops the lock when the process dies, even by SIGKILL."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SynthgapError(f"another synthgap process is running in {folder}") from None
        yield


def run_experiment(
    spec: ExperimentSpec, out: Path, *, model_cache: Path | None = None, progress: bool = True
) -> list[ResultRecord]:
    """Run every unfinished run of `spec` into `out` (results.jsonl, runs/<name>/) and return all results."""
    out = Path(out)
    runs = plan(spec)
    with exclusive(out):
        for stale in out.glob(".*.tmp"):  # left by a process killed mid-write; never read as results
            stale.unlink()
        save_config(spec, out / "spec.yaml")
        done = finished_runs(out)
        todo = [run for run in runs if run.name not in done]
        store = DataStore(spec, progress)
        cache = ModelCache(model_cache or default_cache_dir() / "models")
        bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc=spec.name, unit="run", disable=not progress)
        for run in todo:
            bar.set_postfix_str(run.name)
            run_dir = out / "runs" / run.name
            atomic_write_json(run_dir / "run.json", {**asdict(run), "spec": spec.name})  # what this folder holds
            execute = RUN_KINDS[run.kind]
            append_result(out, execute(run, spec, store, cache, run_dir, progress))
            bar.update(1)
        bar.close()
    return read_results(out)


def record_for(run: Run, spec: ExperimentSpec, *, target: str | None = None, **fields) -> ResultRecord:
    """A result of `run`; `side` says which side trained the rest, whatever the data sets are called."""
    return ResultRecord(run=run.name, kind=run.kind, seed=run.seed, target=target or spec.data.ref(run.target),
                        test=spec.data.test, side=run.target, **fields)  # fmt: skip


def run_baseline(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool) -> ResultRecord:
    """Train (or reuse from the model cache) a student from scratch on one side, and test it."""
    return scratch_record(run, spec, store, cache, run_dir, progress, store.train(run.target), spec.recipe)


def scratch_record(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool,
                   train: ImageTensors, recipe: TrainRecipe, **fields) -> ResultRecord:  # fmt: skip
    """The record of a from-scratch student on `train` under `recipe` (reused from the model cache when there);
    `fields` are extra record fields. A reused model reports the seconds its training took."""
    start = time.perf_counter()
    key, top1, top5, reused = cached_scratch_model(train, spec, recipe, store, cache, run, run_dir, progress)
    seconds = cache.metadata(key)["seconds"] if reused else time.perf_counter() - start
    return record_for(run, spec, source=None, n_transferred=0, frozen=False, epochs=recipe.epochs, top1=top1,
                      top5=top5, train_images=len(train), seconds=seconds, model_key=key, reused_model=reused,
                      **fields)  # fmt: skip


def cached_scratch_model(train: ImageTensors, spec, recipe: TrainRecipe, store: DataStore, cache: ModelCache, run: Run,
                         run_dir: Path, progress: bool) -> tuple[str, float, float, bool]:  # fmt: skip
    """A from-scratch student on `train`: tested from the model cache when an earlier run or spec trained it,
    else trained and added to the cache. Returns (cache key, top-1, top-5, reused)."""
    key, result = ensure_scratch_model(train, spec, recipe, store, cache, run, run_dir, progress)
    if result is not None:
        return key, result.top1, result.top5, False
    model, _ = cache.load(key, spec, len(train.classes))
    top1, top5 = evaluate(model, eval_loader(store.test(), recipe), precision=recipe.precision)
    return key, top1, top5, True


def ensure_scratch_model(train: ImageTensors, spec, recipe: TrainRecipe, store: DataStore, cache: ModelCache, run: Run,
                         run_dir: Path, progress: bool) -> tuple[str, FitResult | None]:  # fmt: skip
    """The cache key of a from-scratch student on `train`, trained and cached first when missing; returns the
    fit result when it was trained now, None when the cache already held it (and it was not tested again)."""
    key = cache.key(train, spec, run.seed, recipe)
    if has_checkpoint(cache.path(key)):
        return key, None
    start = time.perf_counter()
    model, result = train_from_scratch(train, store.test(), spec.model, recipe, run.seed, run_dir=run_dir,
                                       progress=progress, desc=run.name)  # fmt: skip
    metadata = {"seconds": time.perf_counter() - start, "train": train.key, "seed": run.seed}
    save_checkpoint(cache.path(key), model, metadata)
    return key, result


def run_transfer(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool) -> ResultRecord:
    """Layers 1..N from the source side's baseline model, the rest trained on the target side."""
    start = time.perf_counter()
    recipe = stage2_recipe(spec, run)
    _, result, cached_prefix = train_from_source(run, spec, store, cache, store.train(run.target), recipe, run_dir,
                                                 progress)  # fmt: skip
    return record_for(run, spec, source=spec.data.ref(run.source), n_transferred=run.n, frozen=run.freeze,
                   epochs=recipe.epochs if run.n < 18 else 0, top1=result.top1, top5=result.top5,
                   train_images=result.train_images, seconds=time.perf_counter() - start, rest=run.rest,
                   frozen_bn=run.frozen_bn, augmentation=recipe.augmentation, prefix_cache=cached_prefix)  # fmt: skip


def run_reduction(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool) -> ResultRecord:
    """One arm of the data-reduction experiment on a nested, stratified fraction of the real training images."""
    start = time.perf_counter()
    full = store.train(run.target)
    train = full
    if run.fraction < 1:
        train = full.select(
            stratified_positions(full.labels.numpy(), full.classes, fraction=run.fraction, seed=run.seed)
        )
    recipe = stage2_recipe(spec, run)
    if run.schedule == "same_steps":
        recipe = recipe.model_copy(update={"epochs": same_steps_epochs(recipe, len(full), len(train))})
    if run.source is None and run.fraction == 1:  # the real baseline itself: reuse it when cached
        _, top1, top5, _ = cached_scratch_model(train, spec, recipe, store, cache, run, run_dir, progress)
        cached_prefix = False
    elif run.source is None:
        _, result = train_from_scratch(train, store.test(), spec.model, recipe, run.seed, run_dir=run_dir,
                                       progress=progress, desc=run.name)  # fmt: skip
        top1, top5, cached_prefix = result.top1, result.top5, False
    else:
        _, result, cached_prefix = train_from_source(run, spec, store, cache, train, recipe, run_dir, progress)
        top1, top5 = result.top1, result.top5
    return record_for(run, spec, source=spec.data.ref(run.source) if run.source else None, n_transferred=run.n,
                   frozen=run.freeze, real_fraction=run.fraction, epochs=recipe.epochs, top1=top1,
                   top5=top5, train_images=len(train), seconds=time.perf_counter() - start, arm=run.arm,
                   x=round(1 / run.fraction, 2), schedule=run.schedule, augmentation=recipe.augmentation,
                   prefix_cache=cached_prefix)  # fmt: skip


def same_steps_epochs(recipe: TrainRecipe, full_images: int, fraction_images: int) -> int:
    """Epochs that give a fraction the optimiser steps the full set gets in `recipe.epochs` epochs."""
    steps_per_epoch = lambda n: max(1, n // recipe.batch_size)  # noqa: E731 - drop_last batching, at least one
    return math.ceil(recipe.epochs * steps_per_epoch(full_images) / steps_per_epoch(fraction_images))


def stage2_recipe(spec: ExperimentSpec, run: Run) -> TrainRecipe:
    overrides = {"augmentation": run.augmentation, "epochs": run.epochs}
    return spec.recipe.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def train_from_source(run: Run, spec, store: DataStore, cache: ModelCache, train: ImageTensors, recipe: TrainRecipe,
                      run_dir: Path, progress: bool) -> tuple[nn.Module, FitResult, bool]:  # fmt: skip
    """Build the student from the source side's cached baseline model and train it on `train`; returns the trained
    student, its fit result and whether the prefix cache was used."""
    key = cache.key(store.train(run.source), spec, run.seed)
    if not has_checkpoint(cache.path(key)):
        raise SynthgapError(f"{run.name}: source model {run.needs} is not in the model cache {cache.folder}")
    source, _ = cache.load(key, spec, len(train.classes))
    setup = TransferSetup(n=run.n, freeze=run.freeze, rest=run.rest, frozen_bn=run.frozen_bn)
    layer_map = LAYER_MAPS.get(spec.model.name)
    seed_everything(run.seed)
    fresh = build_model(spec.model.model_copy(update={"num_classes": len(train.classes)}))
    student = build_student(source, fresh, setup, layer_map)
    result, cached_prefix = train_student(student, setup, train, store.test(), recipe, seed=run.seed,
                                          layer_map=layer_map, out_dir=run_dir, progress=progress,
                                          desc=run.name)  # fmt: skip
    return student, result, cached_prefix


def run_ablation(run: Run, spec, store: DataStore, cache: ModelCache, run_dir: Path, progress: bool) -> ResultRecord:
    from synthgap.experiments.ablations import ABLATIONS  # imported here: the ablations build on this module

    return ABLATIONS[run.ablation](run, spec, store, cache, run_dir, progress)


RUN_KINDS = {"baseline": run_baseline, "layer_transfer": run_transfer, "data_reduction": run_reduction,
             "ablation": run_ablation}  # fmt: skip
