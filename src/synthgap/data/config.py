"""What data a run trains and is tested on, and how it is prepared."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthgap.data.cache import cache_key, load_images
from synthgap.data.index import LabelledIndex, check_same_classes
from synthgap.data.sources import DataRef, open_source
from synthgap.data.subsets import stratified_positions
from synthgap.data.tensors import ImageTensors
from synthgap.errors import SynthgapError


class AtMost(BaseModel):
    """`per_class: {max: N}`: up to N images of every class; smaller classes keep all of theirs."""

    model_config = ConfigDict(extra="forbid")

    max: int = Field(ge=1)


# Images per class: N exactly (every class must have N), {max: N}, "balanced" (the most every class of a side has),
# "matched" (the same number per class on the real and the synthetic side: the most both have), or None (all).
PerClass = Annotated[int, Field(ge=1)] | AtMost | Literal["balanced", "matched"] | None


def per_class_count(rule: PerClass, counts: dict[str, int]) -> tuple[int | None, bool]:
    """(images per class, whether that is an upper bound) for one side with `counts` images per class. "matched"
    is decided across sides (`matched_count`) and arrives here as a number."""
    if rule is None or isinstance(rule, int):
        return rule, False
    if isinstance(rule, AtMost):
        return rule.max, True
    if rule == "balanced":
        return min(counts.values()), False
    raise SynthgapError("per_class: matched needs a real and a synthetic side (an experiment spec), not one data set")


def matched_count(indexes: Sequence[LabelledIndex]) -> int:
    """The most images per class that every class of every one of `indexes` has."""
    return min(min(index.counts().values()) for index in indexes)


def _is_auto(value: object) -> bool:
    """A setting left to synthgap's own decision (such a value is not dumped: see `DataPrep.device_resident`)."""
    return value == "auto"


class DataPrep(BaseModel):
    """How images are found and prepared; shared by single runs and experiment specs."""

    model_config = ConfigDict(extra="forbid")

    data_root: Path | None = None  # default: $SYNTHGAP_DATA_ROOT
    resolution: int = Field(32, ge=8)  # side of the square images a student sees (trains and is tested on)
    # Shorter side the images are decoded and cached at (None: `resolution`). Larger (e.g. 256 for 224) keeps more
    # of each image: `rrc` samples its crops from the stored image and resizes them to `resolution`; test images and
    # presets that keep the size see the centre crop (the resize-256, centre-crop-224 view of ImageNet recipes).
    storage_resolution: int | None = Field(None, ge=8)
    per_class: PerClass = None  # training images per class (see PerClass; None: all)
    test_per_class: int | None = Field(None, ge=1)  # test images per class (None: all)
    subset_seed: int = 0  # fixed across run seeds, so seeds vary the training, not the data
    skip_bad: bool = False
    cache_dir: Path | None = None
    workers: int | None = Field(None, ge=1)  # decoding processes (default: all cores)
    # Whether a run on a GPU keeps its images in GPU memory: auto (when training and test set need at most a quarter
    # of the run's share of the card's memory), true or false. Where images are read from changes no number, so it
    # is left out of every dump at auto: the fingerprints and records of specs without it stay as they were.
    device_resident: Literal["auto", "true", "false"] = Field("auto", exclude_if=_is_auto)

    @field_validator("per_class", mode="before")
    @classmethod
    def _per_class_form(cls, value: object) -> object:
        """One readable message for every wrong form (the union would list one complaint per alternative)."""
        if value is None or value in ("balanced", "matched"):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        if isinstance(value, dict) and set(value) == {"max"} and isinstance(value["max"], int) and value["max"] >= 1:
            return value
        raise ValueError(f"must be a positive number, {{max: N}}, balanced or matched; got {value!r}")

    @field_validator("device_resident", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: object) -> object:
        """YAML reads `true` and `false` as booleans."""
        return str(value).lower() if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _storage_holds_resolution(self) -> DataPrep:
        if self.storage_resolution is not None and self.storage_resolution < self.resolution:
            raise ValueError(
                f"storage_resolution {self.storage_resolution} is below the resolution {self.resolution}: images "
                "are cropped from the stored ones, so it must be at least as large"
            )
        return self

    @property
    def stored_at(self) -> int:
        """The side images are decoded and cached at."""
        return self.storage_resolution or self.resolution

    @property
    def seen_smaller(self) -> bool:
        """Whether images are stored larger than they are seen."""
        return self.stored_at != self.resolution

    @property
    def resident(self) -> bool | None:
        """`device_resident` as `fit` and `TensorLoader.on` take it (None: decided from the data's size)."""
        return None if self.device_resident == "auto" else self.device_resident == "true"


class DataConfig(DataPrep):
    train: str = "cifake:synthetic"  # data reference of the training images
    test: str = "cifake:real"  # evaluated on its test split

    @field_validator("train", "test")
    @classmethod
    def _valid_ref(cls, value: str) -> str:
        DataRef.parse(value)
        return value


def _indexed(
    config: DataPrep, ref: str, split: str, classes: Sequence[str] | None, index: LabelledIndex | None
) -> LabelledIndex:
    """`index` when the caller already opened the reference (a run's `DataStore` does, once), else opened here."""
    return index if index is not None else open_source(ref, split, config.data_root, classes=classes)


def load_split(
    config: DataPrep,
    ref: str,
    split: str,
    per_class: PerClass,
    progress: bool = True,
    *,
    classes: Sequence[str] | None = None,
    index: LabelledIndex | None = None,
    files_key: str | None = None,
) -> ImageTensors:
    """Decoded images of one data reference and split, cut to `per_class` images per class when given; with
    `classes`, labelled in that class order (the same class set, e.g. the test set's order). `index`: the reference
    already indexed (and labelled in `classes`' order), not opened again; `files_key`: its `files_key`, already read.

    The result's `key` identifies exactly these images (their bytes in order, labels, resolution, subset).
    """
    index = _indexed(config, ref, split, classes, index)
    tensors = load_index(config, index, progress, files_key=files_key)
    try:
        positions = subset_positions(config, tensors.labels.numpy(), tensors.classes, per_class)
    except SynthgapError as exc:  # e.g. a class that --skip-bad left short: name the side and why it is short
        skipped = f", after skipping {len(tensors.skipped)} unreadable images" if tensors.skipped else ""
        raise SynthgapError(f"{ref} ({split}{skipped}): {exc}") from None
    return tensors if positions is None else tensors.select(positions)  # the key extends with the positions


def load_index(
    config: DataPrep, index: LabelledIndex, progress: bool = True, *, files_key: str | None = None
) -> ImageTensors:
    """The decoded images of `index` as `config` prepares them: stored at `stored_at`, seen at `resolution`."""
    tensors = load_images(
        index,
        config.stored_at,
        cache_dir=config.cache_dir,
        skip_bad=config.skip_bad,
        workers=config.workers,
        progress=progress,
        files_key=files_key,
    )
    if config.seen_smaller:  # the key names the size seen too: a model trained at 224 is not one trained at 192
        tensors = tensors.with_resolution(config.resolution, f"{tensors.key}@{config.resolution}")
    return tensors


def subset_positions(
    config: DataPrep, labels: np.ndarray, classes: Sequence[str], per_class: PerClass
) -> np.ndarray | None:
    """The positions `per_class` keeps of a decoded set with these labels (None: all of them)."""
    decoded = np.bincount(labels, minlength=len(classes))  # after any skipped images
    count, at_most = per_class_count(per_class, dict(zip(classes, decoded.tolist(), strict=True)))
    if count is None:
        return None
    return stratified_positions(labels, tuple(classes), per_class=count, seed=config.subset_seed, at_most=at_most)


def split_files(
    config: DataPrep,
    ref: str,
    split: str,
    per_class: PerClass,
    images: ImageTensors,
    *,
    classes: Sequence[str],
    index: LabelledIndex | None = None,
) -> list[Path]:
    """The image file of each row of `images` (what `load_split` returned for the same arguments), in row order:
    the index's files less those decoding skipped, cut to the same subset."""
    index = _indexed(config, ref, split, classes, index)
    skipped = set(images.skipped)
    kept = [i for i in range(len(index)) if index.items.name(i) not in skipped]
    positions = subset_positions(config, index.labels[kept], index.classes, per_class)
    rows = kept if positions is None else [kept[i] for i in positions]
    if len(rows) != len(images):
        raise SynthgapError(f"{ref} ({split}): the files no longer match the decoded images; run again")
    return [index.paths[i] for i in rows]


def files_key_of(config: DataPrep, index: LabelledIndex, progress: bool = False) -> str:
    """What the decoded cache keys `index` on (its images' bytes and labels; the storage size): stats every file,
    and reads them all the first time this version of the files is seen."""
    return cache_key(index, config.stored_at, config.cache_dir, progress=progress)


def test_class_order(config: DataPrep, test_ref: str) -> tuple[str, ...]:
    """The class order every side is labelled in: the test set's."""
    return open_source(test_ref, "test", config.data_root).classes


def load_train_test(config: DataConfig, progress: bool = True) -> tuple[ImageTensors, ImageTensors]:
    order = test_class_order(config, config.test)
    train = load_split(config, config.train, "train", config.per_class, progress, classes=order)
    test = load_split(config, config.test, "test", config.test_per_class, progress, classes=order)
    check_same_classes(train.classes, test.classes, what=f"training ({config.train}) and test ({config.test})")
    return train, test


def split_identity(
    config: DataPrep,
    ref: str,
    split: str,
    per_class: PerClass,
    *,
    classes: Sequence[str] | None = None,
    index: LabelledIndex | None = None,
    files_key: str | None = None,
) -> dict[str, object]:
    """What identifies the images `load_split` would return, found without decoding anything: the data reference,
    the images' bytes and labels (as the decoded cache keys them: `files_key`), and how they are
    prepared and subset. Two calls agree exactly when `load_split` would give the same images."""
    index = _indexed(config, ref, split, classes, index)
    count, at_most = per_class_count(per_class, index.counts())
    identity = {
        "ref": ref,
        "split": split,
        "files": files_key or files_key_of(config, index),
        "resolution": config.resolution,
        "skip_bad": config.skip_bad,
        "per_class": count,
        "subset_seed": config.subset_seed if count is not None else None,
    }
    if at_most:  # only when used, so identities (and fingerprints) of exact per_class runs stay as they were
        identity["at_most"] = True
    if config.seen_smaller:  # likewise only when used
        identity["storage_resolution"] = config.stored_at
    return identity
