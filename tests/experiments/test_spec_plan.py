import pytest

from synthgap.errors import SynthgapError
from synthgap.experiments.plan import plan
from synthgap.experiments.spec import ExperimentSpec
from tests.specs import tiny_spec


def spec(experiments: list[dict], **fields) -> ExperimentSpec:
    """The tiny test spec (no data root: planning reads no images) with these experiments and top-level fields."""
    return tiny_spec(None, experiments, **fields)


def test_unknown_keys_bad_n_and_unknown_sources_are_clear_errors():
    with pytest.raises(SynthgapError, match=r"experiments\.0\.layer_transfer\.nn: unknown key"):
        spec(experiments=[{"kind": "layer_transfer", "nn": [1]}])
    with pytest.raises(SynthgapError, match=r"N must be in 0..18, got \[19\]"):
        spec(experiments=[{"kind": "layer_transfer", "n": [3, 19]}])
    with pytest.raises(SynthgapError, match="unknown data source 'imagenet'"):
        spec(data={"real": "imagenet:/x"}, experiments=[{"kind": "baseline"}])
    with pytest.raises(SynthgapError, match="experiments"):
        spec(experiments=[{"kind": "mystery"}])
    with pytest.raises(SynthgapError, match="experiments"):
        spec(experiments=[])


def test_plan_puts_needed_baselines_first_and_names_runs_by_settings():
    runs = plan(
        spec(
            seeds=[0, 1],
            experiments=[
                {"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": [4, 16]},
                {
                    "kind": "layer_transfer",
                    "directions": ["synthetic_to_real"],
                    "n": [16],
                    "rest": "finetune",
                    "frozen_bn": "reestimate",
                    "augmentation": "none",
                    "epochs": 2,
                },
            ],
        )
    )
    names = [r.name for r in runs]
    assert names[:2] == ["baseline-synthetic-s0", "baseline-synthetic-s1"]  # only the source side is needed
    assert "transfer-synthetic_to_real-n04-s1" in names
    assert "transfer-synthetic_to_real-n16-s0-finetune-bn_reestimate-aug_none-e2" in names
    assert len(names) == len(set(names)) == 2 + 2 * 2 + 2
    transfer = next(r for r in runs if r.name == "transfer-synthetic_to_real-n04-s1")
    assert (transfer.source, transfer.target, transfer.n) == ("synthetic", "real", 4)
    assert [need.name for need in transfer.needs()] == ["baseline-synthetic-s1"]


def test_block_seeds_override_spec_seeds_and_duplicates_collapse():
    runs = plan(
        spec(
            seeds=[0],
            experiments=[
                {"kind": "baseline", "seeds": [5]},
                {"kind": "baseline", "sides": ["real"], "seeds": [5]},
                {"kind": "layer_transfer", "directions": ["real_to_synthetic"], "n": [2]},
            ],
        )
    )
    assert [r.name for r in runs] == [
        "baseline-real-s5",
        "baseline-synthetic-s5",
        "baseline-real-s0",
        "transfer-real_to_synthetic-n02-s0",
    ]
