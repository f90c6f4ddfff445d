"""Generation stage: class list → prompts → diffusers pipeline → ImageFolder + manifest.jsonl (text2img, unCLIP).

Heavy libraries (diffusers, transformers) are imported only when a pipeline is loaded.
"""

from synthgap.generate.classes import ClassInfo, load_classes
from synthgap.generate.common import GenerationResult
from synthgap.generate.plan import Shard, image_seed
from synthgap.generate.text2img import Text2ImgConfig, Text2ImgGenerator, generate_text2img
from synthgap.generate.unclip import UnclipConfig, UnclipGenerator, generate_unclip

__all__ = [
    "ClassInfo",
    "GenerationResult",
    "Shard",
    "Text2ImgConfig",
    "Text2ImgGenerator",
    "UnclipConfig",
    "UnclipGenerator",
    "generate_text2img",
    "generate_unclip",
    "image_seed",
    "load_classes",
]
