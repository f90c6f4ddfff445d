"""The training recipe: everything about how a student is optimised, as one validated config.

A recipe may name a preset (`synthgap.train.presets`): its values fill every key the recipe does not set itself,
so `{preset: fast, epochs: 24}` is the fast recipe with 24 epochs. The resolved recipe (every value) is what runs,
what a run's fingerprint hashes and what its record reports.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthgap.data.transforms import AUGMENTATIONS, Normalization, get_normalization
from synthgap.errors import SynthgapError, unknown_choice
from synthgap.train.presets import RECIPE_PRESETS


class TrainRecipe(BaseModel):
    # allow_inf_nan=False: `lr: .inf` or a NaN weight decay is an input error, never a run that diverges later
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    preset: str = "default"  # a name in synthgap.train.RECIPE_PRESETS; the recipe's own keys override it
    epochs: int = Field(15, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.1, gt=0)  # peak learning rate after warm-up (at lr_reference_batch, when that is set)
    # the linear rule: with a reference batch B, the peak learning rate is lr · batch_size / B
    lr_reference_batch: int | None = Field(None, ge=1)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    decay_norm_and_bias: bool = True  # False: BatchNorm weights and all biases get no weight decay
    # cosine: warm-up then cosine decay; triangular: linear up, linear down; onecycle: cosine up, cosine down
    schedule: Literal["cosine", "triangular", "onecycle"] = "cosine"
    peak: float | None = None  # where the learning rate peaks, as a fraction of the steps; None: warmup_epochs
    warmup_epochs: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    ema_decay: float | None = None  # per-step decay of an exponential moving average of the weights (tested with it)
    augmentation: str = "standard"  # a name in synthgap.data.AUGMENTATIONS
    # test-time augmentation (synthgap.train.tta): flip averages the logits of image and mirror; flip_translate adds
    # both shifted by a pixel each way, at half their weight
    tta: Literal["none", "flip", "flip_translate"] = "none"
    # a name in synthgap.data.NORMALIZATIONS, or explicit {mean: [r, g, b], std: [r, g, b]} on the 0..1 scale
    normalization: str | Normalization = "imagenet"
    test_normalization: str | Normalization | None = None  # None: the training normalization
    # auto: fp16 on CUDA; bf16 on CPUs with native bf16 (AVX512-BF16/AMX), else fp32
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    # torch.compile the training step's model (inductor kernels: another summation order, so it is part of a run's
    # settings when on; left out of the dumped recipe when off, so fingerprints made before it existed still hold)
    compile: bool = Field(False, exclude_if=lambda on: not on)
    # BatchNorm statistics over the whole batch of a run on several GPUs (else each process normalises its share);
    # in the settings only when on, as `compile`
    sync_bn: bool = Field(False, exclude_if=lambda on: not on)
    eval_every: int = Field(0, ge=0)  # evaluate every k epochs; 0: only after the last epoch
    # test images (a fixed random subset, the same for every run) of the evaluations during training; 0: all. The
    # evaluation after the last epoch, the one a record reports, always uses every test image.
    eval_images: int = Field(0, ge=0)
    eval_batch_size: int = Field(500, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """The preset's values under the keys the recipe sets itself."""
        if not isinstance(data, dict) or "preset" not in data:
            return data
        name = data["preset"]
        if not isinstance(name, str) or name not in RECIPE_PRESETS:
            return data  # the field validator words the error
        return {**RECIPE_PRESETS.get(name), **data}

    @property
    def peak_lr(self) -> float:
        """The learning rate at the schedule's peak for this recipe's batch size (the linear rule, when set)."""
        if self.lr_reference_batch is None:
            return self.lr
        return self.lr * self.batch_size / self.lr_reference_batch

    # Names are looked up when the recipe is read, so a spec with a typo fails in --dry-run (with the list of known
    # names), not when its first run starts training. A ValueError lets the error line name the recipe key.
    @field_validator("preset")
    @classmethod
    def _known_preset(cls, name: str) -> str:
        if name not in RECIPE_PRESETS:
            raise ValueError(unknown_choice("recipe preset", name, RECIPE_PRESETS.names()))
        return name

    @field_validator("peak", "ema_decay")
    @classmethod
    def _open_unit_interval(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < 1:
            raise ValueError(f"must lie strictly between 0 and 1, got {value}")
        return value

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
