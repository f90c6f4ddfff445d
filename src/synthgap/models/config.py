"""The one config every model family is built from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from synthgap.errors import SynthgapError

STEMS = ("auto", "imagenet", "cifar")
SMALL_IMAGES = 64  # the largest side (px) that the auto stem treats as small: the CIFAR stem keeps its resolution


class ModelConfig(BaseModel):
    """Which family to build and how big; fields a family does not use keep their defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "resnet18"  # a registered family (`synthgap.models.FAMILIES`)
    num_classes: int = 10
    width: float = 1.0  # ResNets: every stage's channel count (64·w, ...); ViTs: the embedding dimension
    # ResNets only. "imagenet": 7×7/2 conv + max-pool (unmodified); "cifar": 3×3/1, no pool; "auto": cifar for
    # images of at most 64 px (where the ImageNet stem would leave layer4 on 1×1 maps at 32 px), else imagenet
    stem: str = "auto"
    image_size: int = 32  # input side in pixels; only ViTs use it (set by the experiment from the data resolution)
    patch_size: int | None = None  # ViTs only; None: 4 when image_size <= 64, else 16

    @model_validator(mode="after")
    def _validate(self) -> ModelConfig:
        self.check()
        return self

    @property
    def resolved_stem(self) -> str:
        """The stem this config builds: "auto" resolved against `image_size`."""
        if self.stem != "auto":
            return self.stem
        return "cifar" if self.image_size <= SMALL_IMAGES else "imagenet"

    def check(self) -> None:
        """Raise a `SynthgapError` naming the first invalid field.

        Also called by `build_model`, since `model_copy(update=...)` (how the experiment layer sets `image_size`)
        skips validation.
        """
        if self.num_classes < 2:
            raise SynthgapError(f"a classifier needs at least 2 classes, got num_classes={self.num_classes}")
        if self.width <= 0:
            raise SynthgapError(f"width multiplier must be positive, got width={self.width}")
        if self.stem not in STEMS:
            raise SynthgapError(f"unknown stem {self.stem!r}; choose from: {', '.join(STEMS)}")
        if self.image_size < 1:
            raise SynthgapError(f"image_size must be positive, got {self.image_size}")
        if self.patch_size is not None and self.patch_size < 1:
            raise SynthgapError(f"patch_size must be positive, got {self.patch_size}")
