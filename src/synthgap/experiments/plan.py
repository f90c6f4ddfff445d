"""Expand a spec into runs: plain data, named by their settings, baselines before the transfers that need them."""

from __future__ import annotations

from dataclasses import dataclass, replace

from synthgap.errors import SynthgapError
from synthgap.experiments.spec import (
    ABLATION_BLOCKS,
    DIRECTIONS,
    AugmentationBlock,
    BaselineBlock,
    DataReductionBlock,
    ExperimentSpec,
    GeneratorBlock,
    LayerTransferBlock,
    MixingBlock,
    NormalizationBlock,
    Side,
    TextureShapeBlock,
)


@dataclass(frozen=True)
class Run:
    name: str
    kind: str  # "baseline" | "layer_transfer" | "data_reduction" | "ablation"
    seed: int
    target: Side  # side that trains the (rest of the) student
    source: Side | None = None  # side whose model gives layers 1..n
    n: int = 0
    freeze: bool = False
    rest: str = "reinit"
    frozen_bn: str = "eval"
    augmentation: str | None = None  # None: the recipe's
    epochs: int | None = None  # None: the recipe's
    arm: str | None = None  # data reduction: transfer | transfer_finetune | scratch | full_finetune
    fraction: float = 1.0  # data reduction: share of the target side's training images
    schedule: str = "same_epochs"  # data reduction: same_steps | same_epochs
    ablation: str | None = None  # normalization | augmentation | texture_shape | generator | mixing
    variant: str = ""  # the setting an ablation compares, e.g. "per_dataset", "randaugment", "share0.5"
    normalization: str | None = None  # normalization ablation: imagenet | synthetic | real | per_dataset
    adabn: bool = False  # normalization ablation: BatchNorm statistics re-estimated on unlabelled real images
    train_ref: str | None = None  # generator ablation: the synthetic source trained on
    synthetic_share: float | None = None  # mixing: share of synthetic images in a per_class-sized set
    added_synthetic: float | None = None  # mixing: synthetic images added per real image
    cue_sigma: float = 1.0  # texture_shape: blur of the shape-keeping variant
    cue_grid: int = 4  # texture_shape: patch grid of the texture-keeping variant

    @property
    def needs(self) -> str | None:
        """The baseline run whose model this run starts from."""
        return baseline_name(self.source, self.seed) if self.source else None


def baseline_name(side: Side, seed: int) -> str:
    return f"baseline-{side}-s{seed}"


def transfer_name(block: LayerTransferBlock, direction: str, n: int, seed: int, spec: ExperimentSpec) -> str:
    """Run names encode every setting that can differ between blocks, so different runs never share a name."""
    name = f"transfer-{direction}-n{n:02d}-s{seed}"
    if not block.freeze:
        name += "-unfrozen"
    if block.rest != "reinit":
        name += f"-{block.rest}"
    if block.frozen_bn != "eval":
        name += f"-bn_{block.frozen_bn}"
    if block.augmentation is not None and block.augmentation != spec.recipe.augmentation:
        name += f"-aug_{block.augmentation}"
    if block.epochs is not None and block.epochs != spec.recipe.epochs:
        name += f"-e{block.epochs}"
    return name


def plan(spec: ExperimentSpec) -> list[Run]:
    """Every run of the spec once: baselines (including those a transfer needs as its source) first."""
    baselines: list[Run] = []
    transfers: list[Run] = []
    for block in spec.experiments:
        seeds = block.seeds if block.seeds is not None else spec.seeds
        if isinstance(block, BaselineBlock):
            baselines += [Run(baseline_name(side, s), "baseline", s, side) for s in seeds for side in block.sides]
        elif isinstance(block, DataReductionBlock):
            transfers += _reduction_runs(block, seeds, spec)
        elif isinstance(block, ABLATION_BLOCKS):
            transfers += ABLATION_PLANS[type(block)](block, seeds)
        else:
            transfers += _transfer_runs(block, seeds, spec)
    needed = [Run(baseline_name(r.source, r.seed), "baseline", r.seed, r.source) for r in transfers if r.source]
    return _unique(baselines + needed + transfers)


def _transfer_runs(block: LayerTransferBlock, seeds: list[int], spec: ExperimentSpec) -> list[Run]:
    runs = []
    for seed in seeds:
        for direction in block.directions:
            source, target = DIRECTIONS[direction]
            for n in block.n:
                runs.append(
                    Run(
                        name=transfer_name(block, direction, n, seed, spec),
                        kind="layer_transfer",
                        seed=seed,
                        target=target,
                        source=source,
                        n=n,
                        freeze=block.freeze,
                        rest=block.rest,
                        frozen_bn=block.frozen_bn,
                        augmentation=block.augmentation,
                        epochs=block.epochs,
                    )
                )
    return runs


REDUCTION_SETUPS = {  # arm → (source side, layers copied (None: k), frozen, rest)
    "transfer": ("synthetic", None, True, "reinit"),
    "transfer_finetune": ("synthetic", None, True, "finetune"),
    "scratch": (None, 0, False, "reinit"),
    "full_finetune": ("synthetic", 18, False, "finetune"),
}


def divisor_label(fraction: float) -> str:
    """1/8 → "x8"; fractions that are not 1/integer keep three significant digits: 0.3 → "x3.33"."""
    return f"x{round(1 / fraction, 2):g}"


def _reduction_runs(block: DataReductionBlock, seeds: list[int], spec: ExperimentSpec) -> list[Run]:
    runs = []
    for seed in seeds:
        for arm in block.arms:
            source, copied, frozen, rest = REDUCTION_SETUPS[arm]
            for fraction in block.fractions:
                layers = f"-k{block.k}" if copied is None else ""  # k matters only to the transfer arms
                name = f"reduction-{arm}{layers}-{divisor_label(fraction)}-s{seed}-{block.schedule}"
                augmentation = block.augmentation if source else None  # scratch trains with the recipe's
                if augmentation is not None and augmentation != spec.recipe.augmentation:
                    name += f"-aug_{augmentation}"
                if block.epochs is not None and block.epochs != spec.recipe.epochs:
                    name += f"-e{block.epochs}"
                runs.append(
                    Run(
                        name=name,
                        kind="data_reduction",
                        seed=seed,
                        target="real",
                        source=source,
                        n=block.k if copied is None else copied,
                        freeze=frozen,
                        rest=rest,
                        augmentation=block.augmentation if arm != "scratch" else None,
                        epochs=block.epochs,
                        arm=arm,
                        fraction=fraction,
                        schedule=block.schedule,
                    )  # fmt: skip
                )
    return runs


def _normalization_runs(block: NormalizationBlock, seeds: list[int]) -> list[Run]:
    runs = []
    for seed in seeds:
        for side in block.sides:
            for choice in block.stats:
                base = Run(f"ablation-normalization-{side}-{choice}-s{seed}", "ablation", seed, side,
                           ablation="normalization", variant=choice, normalization=choice)  # fmt: skip
                runs.append(base)
                if block.adabn:  # right after its model's run, which trains (or caches) the model it adapts
                    runs.append(replace(base, name=f"{base.name}-adabn", variant=f"{choice}+adabn", adabn=True))
    return runs


def _augmentation_runs(block: AugmentationBlock, seeds: list[int]) -> list[Run]:
    return [
        Run(
            f"ablation-augmentation-{side}-{preset}-s{seed}",
            "ablation",
            seed,
            side,
            augmentation=preset,
            ablation="augmentation",
            variant=preset,
        )  # fmt: skip
        for seed in seeds
        for side in block.sides
        for preset in block.presets
    ]


def _texture_runs(block: TextureShapeBlock, seeds: list[int]) -> list[Run]:
    settings = "" if (block.blur_sigma, block.grid) == (1.0, 4) else f"-sigma{block.blur_sigma:g}-grid{block.grid}"
    common = {"kind": "ablation", "ablation": "texture_shape", "cue_sigma": block.blur_sigma, "cue_grid": block.grid}
    runs = []
    for seed in seeds:
        for side in block.sides:
            runs.append(Run(f"ablation-texture-{side}-s{seed}{settings}", seed=seed, target=side, variant=side,
                            **common))  # fmt: skip
        for n in block.transfer_n:  # a synthetic→real transfer student, as in the layer sweep (frozen, no aug)
            runs.append(Run(f"ablation-texture-synthetic_to_real-n{n:02d}-s{seed}{settings}", seed=seed,
                            target="real", source="synthetic", n=n, freeze=True, augmentation="none",
                            variant=f"synthetic_to_real-n{n}", **common))  # fmt: skip
    return runs


def _generator_runs(block: GeneratorBlock, seeds: list[int]) -> list[Run]:
    return [
        Run(
            f"ablation-generator-{label}-s{seed}",
            "ablation",
            seed,
            "synthetic",
            ablation="generator",
            variant=label,
            train_ref=ref,
        )  # fmt: skip
        for seed in seeds
        for label, ref in block.sources.items()
    ]


def _mixing_runs(block: MixingBlock, seeds: list[int]) -> list[Run]:
    runs = []
    for seed in seeds:
        for share in block.synthetic_shares:
            runs.append(Run(f"ablation-mixing-share{share:g}-s{seed}", "ablation", seed, "real", ablation="mixing",
                            variant=f"share{share:g}", synthetic_share=share))  # fmt: skip
        for ratio in block.added_synthetic:
            runs.append(Run(f"ablation-mixing-add{ratio:g}-s{seed}", "ablation", seed, "real", ablation="mixing",
                            variant=f"add{ratio:g}", added_synthetic=ratio))  # fmt: skip
        if block.pretrain_finetune:  # the synthetic baseline, every layer fine-tuned on the real images
            runs.append(Run(f"ablation-mixing-pretrain_finetune-s{seed}", "ablation", seed, "real", source="synthetic",
                            n=18, freeze=False, rest="finetune", ablation="mixing",
                            variant="pretrain_finetune"))  # fmt: skip
    return runs


ABLATION_PLANS = {
    NormalizationBlock: _normalization_runs,
    AugmentationBlock: _augmentation_runs,
    TextureShapeBlock: _texture_runs,
    GeneratorBlock: _generator_runs,
    MixingBlock: _mixing_runs,
}


def _unique(runs: list[Run]) -> list[Run]:
    seen: dict[str, Run] = {}
    for run in runs:
        if run.name in seen and seen[run.name] != run:
            raise SynthgapError(f"two different runs would both be named {run.name!r}")
        seen.setdefault(run.name, run)
    return list(seen.values())
