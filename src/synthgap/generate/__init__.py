"""Generation stage: class list or real images → prompts → diffusers pipeline → ImageFolder + manifest.jsonl
(text2img, img2img, unCLIP), LoRA adaptation of the generator (adapt), CLIP curation of a generated set (curate),
and export as a Hugging Face dataset (export).

Heavy libraries (diffusers, transformers) are imported only when a pipeline is loaded.
"""

from synthgap.generate.adapt import AdaptConfig
from synthgap.generate.classes import ClassInfo, load_classes
from synthgap.generate.common import GenerationResult
from synthgap.generate.curate import CurateConfig, curate_generated
from synthgap.generate.export import ExportConfig, export_generated
from synthgap.generate.img2img import Img2ImgConfig, generate_img2img
from synthgap.generate.plan import Shard, image_seed
from synthgap.generate.text2img import Text2ImgConfig, Text2ImgGenerator, generate_text2img
from synthgap.generate.unclip import UnclipConfig, UnclipGenerator, generate_unclip

__all__ = [
    "AdaptConfig",
    "CurateConfig",
    "ExportConfig",
    "Img2ImgConfig",
    "curate_generated",
    "export_generated",
    "generate_img2img",
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
