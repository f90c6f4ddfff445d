"""What runs share: the decoded images of a spec and the cache of trained models.

Both are cheap to pickle (loaded tensors are dropped and reloaded from the disk cache), so a run and its context can
be sent to another process.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from synthgap.data.config import PerClass, load_split, matched_count, split_files, split_identity, test_class_order
from synthgap.data.index import check_same_classes
from synthgap.data.sources import open_source
from synthgap.data.tensors import ImageTensors
from synthgap.experiments.blocks import Side
from synthgap.experiments.cachekey import cache_key
from synthgap.models import ModelConfig, build_model
from synthgap.train.checkpoint import METADATA, has_checkpoint, load_weights
from synthgap.train.recipe import TrainRecipe

if TYPE_CHECKING:
    from synthgap.experiments.settings import Settings


class DataStore:
    """The decoded images of a spec, loaded once per process and shared by all its runs."""

    def __init__(self, spec: Settings, progress: bool) -> None:
        self.spec = spec
        self.progress = progress
        self._loaded: dict[str, ImageTensors] = {}
        self._identities: dict[str, dict] = {}
        self._classes: tuple[str, ...] | None = None
        self._matched: int | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        """The class order every side is labelled in (the test set's), so label i is one class everywhere."""
        if self._classes is None:
            self._classes = test_class_order(self.spec.data, self.spec.data.test)
        return self._classes

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loaded": {}}  # another process reloads from the disk cache

    def train(self, side: Side) -> ImageTensors:
        return self.train_ref(self.spec.data.ref(side))

    def train_ref(self, ref: str, *, all_images: bool = False) -> ImageTensors:
        """Training images of any data reference: the spec's `per_class` of each class, or all of them."""
        return self._get(ref, "train", self._per_class("train", all_images))

    def train_files(self, side: Side) -> list[Path]:
        """The image file of each row of `train(side)`, in row order."""
        ref = self.spec.data.ref(side)
        per_class = self._per_class("train", False)
        return split_files(self.spec.data, ref, "train", per_class, self.train(side), classes=self.classes)

    def test(self) -> ImageTensors:
        return self._get(self.spec.data.test, "test", self._per_class("test", False))

    def identity(self, ref: str, split: str = "train", *, all_images: bool = False) -> dict:
        """What identifies the images `train_ref` (or `test`) returns, without decoding them."""
        per_class = self._per_class(split, all_images)
        key = f"{ref}/{split}/{per_class}"
        if key not in self._identities:
            self._identities[key] = split_identity(self.spec.data, ref, split, per_class, classes=self.classes)
        return self._identities[key]

    def test_identity(self) -> dict:
        return self.identity(self.spec.data.test, "test")

    def _per_class(self, split: str, all_images: bool) -> PerClass:
        if split == "test":
            return self.spec.data.test_per_class
        if all_images:
            return None
        if self.spec.data.per_class == "matched":  # one number for both sides: the most every class of each has
            if self._matched is None:
                refs = (self.spec.data.real, self.spec.data.synthetic)
                sides = [open_source(ref, "train", self.spec.data.data_root) for ref in refs]
                self._matched = matched_count(sides)
            return self._matched
        return self.spec.data.per_class

    def _get(self, ref: str, split: str, per_class: int | None) -> ImageTensors:
        key = f"{ref}/{split}/{per_class}"
        if key not in self._loaded:
            self._loaded[key] = load_split(self.spec.data, ref, split, per_class, self.progress, classes=self.classes)
            classes = [t.classes for t in self._loaded.values()]
            for other in classes[1:]:
                check_same_classes(classes[0], other, what="real, synthetic and test")
        return self._loaded[key]


class ModelCache:
    """Trained models keyed by (training images, model config, recipe, seed): trained once, reused across N,
    directions and specs. Each entry is self-describing (its model config and class list are in its metadata)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def key(self, images: ImageTensors, model: ModelConfig, recipe: TrainRecipe, seed: int, compute: dict) -> str:
        """`compute`: the training's device type, threads and precision (`Compute.identity`), which change its
        numbers: a model trained with other arithmetic is another entry."""
        if not images.key:
            raise ValueError("images without a key cannot identify a cached model")
        # Unset optional fields are left out, so adding one keeps every existing model's key; the test-set
        # normalization only changes how a model is evaluated, not the model.
        recipe_fields = recipe.model_dump(mode="json", exclude_none=True, exclude={"test_normalization"})
        identity = {
            "images": images.key,
            "model": model.model_dump(mode="json", exclude_none=True),
            "recipe": recipe_fields,
            "seed": seed,
            "compute": compute,
        }
        return cache_key(identity)

    def path(self, key: str) -> Path:
        return self.folder / key

    def has(self, key: str) -> bool:
        return has_checkpoint(self.path(key))

    def metadata(self, key: str) -> dict:
        return json.loads((self.path(key) / METADATA).read_text())

    def load(self, key: str, model: ModelConfig) -> tuple[nn.Module, dict]:
        built = build_model(model)
        return built, load_weights(built, self.path(key))

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Held while a model is trained for this key: a second process waits, then finds the model cached."""
        locks = self.folder / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
