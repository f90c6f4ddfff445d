"""The training recipe: everything about how a student is optimised, as one validated config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthgap.data.transforms import AUGMENTATIONS, Normalization, get_normalization
from synthgap.errors import SynthgapError


class TrainRecipe(BaseModel):
    # allow_inf_nan=False: `lr: .inf` or a NaN weight decay is an input error, never a run that diverges later
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(15, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.1, gt=0)  # peak learning rate after warm-up
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augmentation: str = "standard"  # a name in synthgap.data.AUGMENTATIONS
    # a name in synthgap.data.NORMALIZATIONS, or explicit {mean: [r, g, b], std: [r, g, b]} on the 0..1 scale
    normalization: str | Normalization = "imagenet"
    test_normalization: str | Normalization | None = None  # None: the training normalization
    # auto: fp16 on CUDA; bf16 on CPUs with native bf16 (AVX512-BF16/AMX), else fp32
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    eval_every: int = Field(0, ge=0)  # evaluate every k epochs; 0: only after the last epoch
    eval_batch_size: int = Field(500, ge=1)

    # Names are looked up when the recipe is read, so a spec with a typo fails in --dry-run (with the list of known
    # names), not when its first run starts training. A ValueError lets the error line name the recipe key.
    @field_validator("augmentation")
    @classmethod
    def _known_augmentation(cls, name: str) -> str:
        try:
            AUGMENTATIONS.get(name)
        except SynthgapError as exc:
            raise ValueError(str(exc)) from None
        return name

    @field_validator("normalization", "test_normalization")
    @classmethod
    def _known_normalization(cls, choice: str | Normalization | None) -> str | Normalization | None:
        if choice is not None:
            try:
                get_normalization(choice)
            except SynthgapError as exc:
                raise ValueError(str(exc)) from None
        return choice
