"""Generation stage: class list or real images → prompts → diffusers pipeline → ImageFolder + manifest.jsonl
(text2img, img2img, unCLIP), LoRA adaptation of the generator (adapt), CLIP curation of a generated set (curate),
and export as a Hugging Face dataset (export).

Importing a generator's module is cheap (its command is declared there and `synthgap generate X --help` reads it):
torch, PIL and numpy are imported on first use, diffusers and transformers only when a pipeline is loaded. The
names below are exported the same way, by the module that defines them, on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AdaptConfig": "adapt",
    "ClassInfo": "classes",
    "load_classes": "classes",
    "GenerationResult": "common",
    "CurateConfig": "curate",
    "curate_generated": "curate",
    "ExportConfig": "export",
    "export_generated": "export",
    "Img2ImgConfig": "img2img",
    "generate_img2img": "img2img",
    "Shard": "plan",
    "image_seed": "plan",
    "Text2ImgConfig": "text2img",
    "Text2ImgGenerator": "text2img",
    "generate_text2img": "text2img",
    "UnclipConfig": "unclip",
    "UnclipGenerator": "unclip",
    "generate_unclip": "unclip",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
