"""What data a run trains and is tested on, and how it is prepared."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthgap.data.cache import ImageTensors, cache_key, load_images
from synthgap.data.index import check_same_classes
from synthgap.data.sources import DataRef, open_source
from synthgap.data.subsets import stratified_positions


class DataPrep(BaseModel):
    """How images are found and prepared; shared by single runs and experiment specs."""

    model_config = ConfigDict(extra="forbid")

    data_root: Path | None = None  # default: $SYNTHGAP_DATA_ROOT
    resolution: int = Field(32, ge=8)
    per_class: int | None = Field(None, ge=1)  # training images per class (None: all)
    test_per_class: int | None = Field(None, ge=1)  # test images per class (None: all)
    subset_seed: int = 0  # fixed across run seeds, so seeds vary the training, not the data
    skip_bad: bool = False
    cache_dir: Path | None = None
    workers: int | None = Field(None, ge=1)  # decoding processes (default: all cores)


class DataConfig(DataPrep):
    train: str = "cifake:synthetic"  # data reference of the training images
    test: str = "cifake:real"  # evaluated on its test split

    @field_validator("train", "test")
    @classmethod
    def _valid_ref(cls, value: str) -> str:
        DataRef.parse(value)
        return value


def load_split(
    config: DataPrep,
    ref: str,
    split: str,
    per_class: int | None,
    progress: bool = True,
    *,
    classes: Sequence[str] | None = None,
) -> ImageTensors:
    """Decoded images of one data reference and split, cut to `per_class` images per class when given; with
    `classes`, labelled in that class order (the same class set, e.g. the test set's order).

    The result's `key` identifies exactly these images (file list, sizes, mtimes, labels, resolution, subset).
    """
    index = open_source(ref, split, config.data_root, classes=classes)
    tensors = load_images(
        index,
        config.resolution,
        cache_dir=config.cache_dir,
        skip_bad=config.skip_bad,
        workers=config.workers,
        progress=progress,
    )
    if per_class is None:
        return tensors
    labels = tensors.labels.numpy()
    positions = stratified_positions(labels, tensors.classes, per_class=per_class, seed=config.subset_seed)
    return tensors.select(positions)  # its key extends the decoded set's key with these positions


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
    config: DataPrep, ref: str, split: str, per_class: int | None, *, classes: Sequence[str] | None = None
) -> dict[str, object]:
    """What identifies the images `load_split` would return, found without decoding anything: the data reference,
    the file list with sizes and modification times (as the decoded cache keys it), and how they are prepared and
    subset. Two calls agree exactly when `load_split` would give the same images."""
    index = open_source(ref, split, config.data_root, classes=classes)
    return {
        "ref": ref,
        "split": split,
        "files": cache_key(index, config.resolution),
        "resolution": config.resolution,
        "skip_bad": config.skip_bad,
        "per_class": per_class,
        "subset_seed": config.subset_seed if per_class is not None else None,
    }
