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

from synthgap.data.config import PerClass, files_key_of, load_split, matched_count, split_files, split_identity
from synthgap.data.index import LabelledIndex, check_same_classes
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
    """The images of a spec, resolved once per process and shared by all its runs and checks: each (reference,
    split) indexed once and labelled in one class order, each set decoded once.

    Everything before decoding reads the same indexes: the pre-flight check (`checks.open_spec_sources`), the
    identities that go into fingerprints, `per_class: matched`, the files of a set's rows, and the decoding itself."""

    def __init__(self, spec: Settings, progress: bool) -> None:
        self.spec = spec
        self.progress = progress
        self._indexes: dict[tuple[str, str], LabelledIndex] = {}
        self._files_keys: dict[tuple[str, str], str] = {}
        self._loaded: dict[str, ImageTensors] = {}
        self._identities: dict[str, dict] = {}
        self._classes: tuple[str, ...] | None = None
        self._matched: int | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        """The class order every side is labelled in (the test set's), so label i is one class everywhere."""
        if self._classes is None:
            self._classes = self.source_index(self.spec.data.test, "test").classes
        return self._classes

    def index(self, ref: str, split: str = "train") -> LabelledIndex:
        """The images of `ref`'s `split`, indexed (not decoded) and labelled in `classes`' order; a different class
        set is an error naming the classes."""
        return self.source_index(ref, split).reordered(self.classes)

    def source_index(self, ref: str, split: str) -> LabelledIndex:
        """`ref`'s `split` as its source indexes it (in its own class order), opened the first time it is asked for."""
        if (ref, split) not in self._indexes:
            self._indexes[(ref, split)] = open_source(ref, split, self.spec.data.data_root)
        return self._indexes[(ref, split)]

    def files_key(self, ref: str, split: str = "train") -> str:
        """What the decoded cache keys `ref`'s `split` on, found once per run, so the identity in the fingerprints
        and the decoded images agree on the same version of the files."""
        if (ref, split) not in self._files_keys:
            self._files_keys[(ref, split)] = files_key_of(self.spec.data, self.index(ref, split), self.progress)
        return self._files_keys[(ref, split)]

    def __getstate__(self) -> dict:  # another process reloads from the disk cache and opens its own indexes
        return {**self.__dict__, "_loaded": {}, "_indexes": {}, "_files_keys": {}}

    def train(self, side: Side) -> ImageTensors:
        return self.train_ref(self.spec.data.ref(side))

    def train_ref(self, ref: str, *, all_images: bool = False) -> ImageTensors:
        """Training images of any data reference: the spec's `per_class` of each class, or all of them."""
        return self._get(ref, "train", self._per_class("train", all_images))

    def train_files(self, side: Side) -> list[Path]:
        """The image file of each row of `train(side)`, in row order."""
        ref = self.spec.data.ref(side)
        per_class = self._per_class("train", False)
        images = self.train(side)
        return split_files(self.spec.data, ref, "train", per_class, images, classes=self.classes, index=self.index(ref))

    def test(self) -> ImageTensors:
        return self._get(self.spec.data.test, "test", self._per_class("test", False))

    def identity(self, ref: str, split: str = "train", *, all_images: bool = False) -> dict:
        """What identifies the images `train_ref` (or `test`) returns, without decoding them."""
        per_class = self._per_class(split, all_images)
        key = f"{ref}/{split}/{per_class}"
        if key not in self._identities:
            self._identities[key] = split_identity(
                self.spec.data,
                ref,
                split,
                per_class,
                index=self.index(ref, split),
                files_key=self.files_key(ref, split),
            )
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
                self._matched = matched_count([self.source_index(ref, "train") for ref in refs])
            return self._matched
        return self.spec.data.per_class

    def _get(self, ref: str, split: str, per_class: int | None) -> ImageTensors:
        key = f"{ref}/{split}/{per_class}"
        if key not in self._loaded:
            self._loaded[key] = load_split(
                self.spec.data,
                ref,
                split,
                per_class,
                self.progress,
                index=self.index(ref, split),
                files_key=self.files_key(ref, split),
            )
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
