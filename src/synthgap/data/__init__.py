"""Data stage: sources → labelled index → stratified subsets → decoded uint8 cache → batched augmentation."""

from synthgap.data.cache import load_images
from synthgap.data.index import LabelledIndex, check_same_classes
from synthgap.data.loader import TensorLoader
from synthgap.data.sources import SOURCES, DataRef, open_source
from synthgap.data.subsets import stratified_positions
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import AUGMENTATIONS, NORMALIZATIONS, build_augmentation, get_normalization

__all__ = [
    "AUGMENTATIONS",
    "NORMALIZATIONS",
    "SOURCES",
    "DataRef",
    "ImageTensors",
    "LabelledIndex",
    "TensorLoader",
    "build_augmentation",
    "check_same_classes",
    "get_normalization",
    "load_images",
    "open_source",
    "stratified_positions",
]

# Registration is explicit here: the generated, imagenet100 and hf sources, and the AutoAugment-family presets.
from synthgap.data import autoaugment, generated, hf, imagenet100  # noqa: F401,E402
