"""Data stage: sources → labelled index → stratified subsets → decoded uint8 cache → batched augmentation.

Importing the package registers the data sources and nothing heavier: `synthgap data describe` and a spec's
checks read sources without torch. The decoded sets, loaders and transforms (torch) load when first named.
"""

from importlib import import_module
from typing import Any

from synthgap.data.index import LabelledIndex, check_same_classes
from synthgap.data.sources import SOURCES, DataRef, open_source

_LAZY = {  # name → module, imported on first use (each imports torch)
    "ImageTensors": "synthgap.data.tensors",
    "load_images": "synthgap.data.cache",
    "TensorLoader": "synthgap.data.loader",
    "stratified_positions": "synthgap.data.subsets",
    "AUGMENTATIONS": "synthgap.data.transforms",
    "NORMALIZATIONS": "synthgap.data.transforms",
    "build_augmentation": "synthgap.data.transforms",
    "get_normalization": "synthgap.data.transforms",
}

__all__ = ["SOURCES", "DataRef", "LabelledIndex", "check_same_classes", "open_source", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Registration is explicit here: the generated, imagenet100 and hf sources (the AutoAugment-family presets register
# with the transforms module, which imports them).
from synthgap.data import generated, hf, imagenet100  # noqa: F401,E402
