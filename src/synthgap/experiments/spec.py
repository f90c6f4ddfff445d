"""Experiment specs: YAML validated into typed blocks (unknown keys, out-of-range N, bad data references fail).

name: cifake-layers
data: {real: cifake:real, synthetic: cifake:synthetic, test: cifake:real, per_class: 1000}
model: {width: 1.0}
recipe: {epochs: 4}
seeds: [0]
experiments:
  - kind: baseline
  - kind: layer_transfer
    directions: [synthetic_to_real, real_to_synthetic]
    n: [1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthgap.data.config import DataPrep
from synthgap.data.sources import DataRef
from synthgap.data.transforms import AUGMENTATIONS
from synthgap.models import ModelConfig, get_family
from synthgap.train.recipe import TrainRecipe

Side = Literal["real", "synthetic"]
Direction = Literal["synthetic_to_real", "real_to_synthetic"]
DIRECTIONS: dict[str, tuple[Side, Side]] = {  # direction → (side that trains layers 1..N, side that trains the rest)
    "synthetic_to_real": ("synthetic", "real"),
    "real_to_synthetic": ("real", "synthetic"),
}


def _known_preset(name: str | None) -> str | None:
    """Unknown augmentation names fail when the spec is read, with the list of known ones, not after training."""
    if name is not None:
        AUGMENTATIONS.get(name)
    return name


def _check_layers(values: list[int], low: int, high: int, what: str) -> None:
    _all_valid(values, lambda v: low <= v <= high, f"{what}: N must be in {low}..{high}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _all_valid(values: list, valid: Callable[[float], bool], rule: str) -> list:
    """`values` unchanged when every one satisfies `valid`, else an error stating `rule` and the offenders."""
    bad = [v for v in values if not valid(v)]
    if bad:
        raise ValueError(f"{rule}, got {bad}")
    return values


class ExperimentData(DataPrep):
    """The two training sides and the test set; `per_class` applies to each side (shared by every run)."""

    real: str = "cifake:real"
    synthetic: str = "cifake:synthetic"
    test: str = "cifake:real"  # its test split is the real test set every run is measured on

    @field_validator("real", "synthetic", "test")
    @classmethod
    def _valid_ref(cls, value: str) -> str:
        DataRef.parse(value)
        return value

    def ref(self, side: Side) -> str:
        return self.real if side == "real" else self.synthetic


class BaselineBlock(_Strict):
    kind: Literal["baseline"]
    sides: list[Side] = ["real", "synthetic"]
    seeds: list[int] | None = Field(None, min_length=1)  # default: the spec's seeds


class LayerTransferBlock(_Strict):
    kind: Literal["layer_transfer"]
    directions: list[Direction] = ["synthetic_to_real", "real_to_synthetic"]
    n: list[int] | Literal["auto"] | None = None  # default: 1..L-1 (L: the model family's number of layers)
    # n: auto — find by bisection over N where the share of the gap recovered, (top-1(N) − S) / (R − S), of the
    # synthetic→real students falls below each level, instead of training every N; at most `budget` students a seed
    levels: list[float] | None = None  # with n: auto (default [0.5]): shares of the gap R − S, each in (0, 1)
    budget: int | None = Field(None, ge=1)  # with n: auto: stage-2 students per seed at most (default: unlimited)
    seeds: list[int] | None = Field(None, min_length=1)
    freeze: bool = True  # layers 1..N frozen (else fine-tuned with the rest)
    rest: Literal["reinit", "finetune"] = "reinit"  # layers N+1..L: fresh, or kept from the source and fine-tuned
    frozen_bn: Literal["eval", "reestimate"] = "eval"  # frozen BatchNorm statistics: source's, or re-estimated
    augmentation: str | None = None  # stage-2 augmentation (default: the recipe's); "none" enables the prefix cache
    epochs: int | None = Field(None, ge=1)  # stage-2 epochs (default: the recipe's)

    @field_validator("n")
    @classmethod
    def _n_not_negative(cls, values: list[int] | str | None) -> list[int] | str | None:
        if values is None or values == "auto":
            return values
        return _all_valid(values, lambda v: v >= 0, "N must not be negative")

    @field_validator("levels")
    @classmethod
    def _levels_in_range(cls, values: list[float] | None) -> list[float] | None:
        return None if values is None else _all_valid(values, lambda v: 0 < v < 1, "levels must be in (0, 1)")

    @field_validator("augmentation")
    @classmethod
    def _known_augmentation(cls, value: str | None) -> str | None:
        return _known_preset(value)

    @model_validator(mode="after")
    def _adaptive_settings(self) -> LayerTransferBlock:
        if self.n == "auto":
            if self.directions != ["synthetic_to_real"]:
                raise ValueError("n: auto searches the synthetic→real students: set directions: [synthetic_to_real]")
            self.levels = self.levels or [0.5]
        elif self.levels is not None or self.budget is not None:
            raise ValueError("levels and budget go with n: auto")
        return self

    @property
    def adaptive(self) -> bool:
        return self.n == "auto"


Arm = Literal["transfer", "transfer_finetune", "scratch", "full_finetune"]


class DataReductionBlock(_Strict):
    """Students trained on a fraction of the real data (nested stratified subsets), per arm:
    transfer: layers 1..k from the synthetic model, frozen, the rest re-initialised; transfer_finetune: the same with
    the rest kept from the synthetic model; scratch: the whole student; full_finetune: all layers from the synthetic
    model, all trained."""

    kind: Literal["data_reduction"]
    fractions: list[float] = [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64]
    seeds: list[int] | None = Field(None, min_length=1)
    k: int | None = Field(None, ge=1)  # layers from the synthetic model (default: L-2, the paper's 16 of 18)
    arms: list[Arm] = ["transfer", "transfer_finetune", "scratch"]
    # same_steps: every fraction gets the optimiser steps of the full set (smaller sets see more epochs), so a
    # curve measures less data, not less training; same_epochs: steps shrink with the fraction.
    schedule: Literal["same_steps", "same_epochs"] = "same_steps"
    augmentation: str | None = None  # stage-2 augmentation (default: the recipe's); "none" enables the prefix cache
    epochs: int | None = Field(None, ge=1)  # epochs at fraction 1 (default: the recipe's)

    @field_validator("augmentation")
    @classmethod
    def _known_augmentation(cls, value: str | None) -> str | None:
        return _known_preset(value)

    @field_validator("fractions")
    @classmethod
    def _fractions_in_range(cls, values: list[float]) -> list[float]:
        return _all_valid(values, lambda v: 0 < v <= 1, "fractions must be in (0, 1]")


NormalizationChoice = Literal["imagenet", "synthetic", "real", "per_dataset"]


class NormalizationBlock(_Strict):
    """Students trained from scratch under different normalization statistics (measured on the training images):
    imagenet: the ImageNet constants; synthetic / real: one side's statistics for training and test; per_dataset:
    each data set normalized with its own (training side's for training, the real side's for the real test set).
    With `adabn`, every such student is also tested after re-estimating all its BatchNorm statistics on the
    unlabelled real training images."""

    kind: Literal["normalization"]
    stats: list[NormalizationChoice] = ["imagenet", "synthetic", "real", "per_dataset"]
    sides: list[Side] = ["synthetic"]
    adabn: bool = True
    seeds: list[int] | None = Field(None, min_length=1)


class AugmentationBlock(_Strict):
    """Students trained from scratch on each side with each augmentation preset."""

    kind: Literal["augmentation"]
    presets: list[str] = ["none", "standard", "randaugment", "trivialaugment", "autoaugment", "augmix"]
    sides: list[Side] = ["real", "synthetic"]
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("presets")
    @classmethod
    def _known_presets(cls, values: list[str]) -> list[str]:
        for name in values:
            AUGMENTATIONS.get(name)  # unknown names fail here with the list of known ones
        return values


class TextureShapeBlock(_Strict):
    """Texture-vs-shape reliance of the baselines and of synthetic→real transfer students (layers 1..n frozen)."""

    kind: Literal["texture_shape"]
    sides: list[Side] = ["real", "synthetic"]
    transfer_n: list[int] | None = None  # default: [L-2]
    blur_sigma: float = Field(1.0, gt=0)
    grid: int = Field(4, ge=2)
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("transfer_n")
    @classmethod
    def _n_not_negative(cls, values: list[int] | None) -> list[int] | None:
        return LayerTransferBlock._n_not_negative(values)


class GeneratorBlock(_Strict):
    """Students trained from scratch on each synthetic source (label → data reference), tested on the real test set."""

    kind: Literal["generator"]
    sources: dict[str, str] = Field(min_length=1)
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("sources")
    @classmethod
    def _valid_refs(cls, values: dict[str, str]) -> dict[str, str]:
        for label, ref in values.items():
            if not label or not all(c.isalnum() or c in "-_." for c in label):
                raise ValueError(f"source label {label!r} must be letters, digits, '-', '_' or '.'")
            DataRef.parse(ref)
        return values


class MixingBlock(_Strict):
    """Real and synthetic images in one training set, and synthetic pretraining followed by full fine-tuning.

    synthetic_shares: sets of `per_class` images per class, this share of them synthetic (0: R, 1: S);
    added_synthetic: all real images plus this many synthetic images per real image;
    pretrain_finetune: the synthetic baseline with all layers fine-tuned on the real images."""

    kind: Literal["mixing"]
    synthetic_shares: list[float] = [0.25, 0.5, 0.75]
    added_synthetic: list[float] = []
    pretrain_finetune: bool = True
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("synthetic_shares")
    @classmethod
    def _shares_in_range(cls, values: list[float]) -> list[float]:
        return _all_valid(values, lambda v: 0 <= v <= 1, "synthetic shares must be in [0, 1]")

    @field_validator("added_synthetic")
    @classmethod
    def _ratios_positive(cls, values: list[float]) -> list[float]:
        return _all_valid(values, lambda v: v > 0, "added synthetic ratios must be positive")


ABLATION_BLOCKS = (NormalizationBlock, AugmentationBlock, TextureShapeBlock, GeneratorBlock, MixingBlock)

Block = Annotated[
    BaselineBlock
    | LayerTransferBlock
    | DataReductionBlock
    | NormalizationBlock
    | AugmentationBlock
    | TextureShapeBlock
    | GeneratorBlock
    | MixingBlock,
    Field(discriminator="kind"),
]


class RunResources(_Strict):
    """What each run asks a Ray or SLURM backend for (the command line can override it)."""

    cpus: int = Field(1, ge=1)
    gpus: float = Field(0.0, ge=0)


class ExperimentSpec(_Strict):
    name: str = "experiment"
    data: ExperimentData = ExperimentData()
    model: ModelConfig = ModelConfig()
    recipe: TrainRecipe = TrainRecipe()
    seeds: list[int] = Field([0], min_length=1)
    experiments: list[Block] = Field(min_length=1)
    resources: RunResources = RunResources()

    @model_validator(mode="after")
    def _patch_grid_fits(self) -> ExperimentSpec:
        """Checked here rather than after hours of training: the patch grid must tile the test images."""
        for block in self.experiments:
            if isinstance(block, TextureShapeBlock) and self.data.resolution % block.grid:
                raise ValueError(
                    f"texture_shape grid {block.grid} does not divide the resolution {self.data.resolution}"
                )
        return self

    @model_validator(mode="after")
    def _layers_fit_the_model(self) -> ExperimentSpec:
        """Layer numbers come from the model family (L layers): defaults are filled in, and every N is checked."""
        family = get_family(self.model.name)
        last = family.num_layers
        for block in self.experiments:
            if isinstance(block, LayerTransferBlock):
                block.n = list(range(1, last)) if block.n is None else block.n
                if not block.adaptive:
                    _check_layers(block.n, 0, last, f"layer_transfer n ({family.name} has {last} layers)")
                if block.frozen_bn == "reestimate" and family.norm != "batchnorm":
                    raise ValueError(f"frozen_bn: reestimate needs BatchNorm layers; {family.name} uses {family.norm}")
            elif isinstance(block, DataReductionBlock):
                block.k = last - 2 if block.k is None else block.k
                _check_layers([block.k], 1, last - 1, f"data_reduction k ({family.name} has {last} layers)")
            elif isinstance(block, TextureShapeBlock):
                block.transfer_n = [last - 2] if block.transfer_n is None else block.transfer_n
                _check_layers(block.transfer_n, 0, last, f"texture_shape transfer_n ({family.name} has {last} layers)")
            elif isinstance(block, NormalizationBlock) and block.adabn and family.norm != "batchnorm":
                raise ValueError(f"normalization adabn needs BatchNorm layers; {family.name} uses {family.norm}")
        return self

    def training_refs(self) -> list[str]:
        """Every data reference some run of the spec trains on (or measures statistics of), in first-use order."""
        refs: list[str] = []
        for block in self.experiments:
            sides = getattr(block, "sides", None) or ["real", "synthetic"]
            if isinstance(block, GeneratorBlock):
                refs += list(block.sources.values())
            elif isinstance(block, BaselineBlock | AugmentationBlock | TextureShapeBlock):
                refs += [self.data.ref(side) for side in sides]
                if isinstance(block, TextureShapeBlock) and block.transfer_n:  # synthetic→real students
                    refs += [self.data.synthetic, self.data.real]
            else:  # transfers, reduction, mixing and normalization use both sides (or their statistics)
                refs += [self.data.real, self.data.synthetic]
        return list(dict.fromkeys(refs))
