"""Whether a run keeps its images in GPU memory: one decision per spec and card kind (`data.device_resident`), made
from the data's size, the card's total memory and the run's share of the card, never from its free memory.

Everything here runs without a GPU: the decision is a pure function of sizes, and `run_residency` asks the card only
for its total memory (patched here).
"""

from __future__ import annotations

import pytest
import torch

from synthgap import speccheck
from synthgap.data import loader as loader_module
from synthgap.data.config import DataConfig
from synthgap.data.loader import RESIDENT_SHARE, FeatureLoader, TensorLoader, keeps_resident, run_residency
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import get_normalization
from synthgap.errors import SynthgapError
from synthgap.train.compute import Compute
from synthgap.train.loop import fit
from tests.train.test_fit import RECIPE, colour_classes, loaders, tiny_model

GIB = 2**30


# --- the decision ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nbytes", "total", "share", "expected"),
    [
        (20 * GIB, 80 * GIB, 1.0, True),  # exactly a quarter of the card
        (20 * GIB + 1, 80 * GIB, 1.0, False),
        (10 * GIB, 80 * GIB, 0.5, True),  # a quarter of half the card
        (11 * GIB, 80 * GIB, 0.5, False),  # fits a whole card, not the half this run has
        (30 * GIB, 140 * GIB, 1.0, True),  # a larger card keeps what a smaller one does not
        (30 * GIB, 80 * GIB, 1.0, False),
        (0, 80 * GIB, 0.25, True),
    ],
)
def test_auto_keeps_a_set_that_needs_at_most_a_quarter_of_the_runs_share(nbytes, total, share, expected):
    assert keeps_resident(nbytes, total, gpu_share=share) is expected
    assert keeps_resident(nbytes, total, gpu_share=share, resident=None) is expected


@pytest.mark.parametrize("resident", [True, False])
@pytest.mark.parametrize(("nbytes", "share"), [(1, 1.0), (70 * GIB, 0.5)])
def test_an_explicit_setting_wins_over_the_size(resident, nbytes, share):
    assert keeps_resident(nbytes, 80 * GIB, gpu_share=share, resident=resident) is resident


def test_the_share_of_the_card_is_a_quarter():
    assert RESIDENT_SHARE == 0.25


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5, float("nan")])
def test_a_share_outside_zero_to_one_is_refused(share):
    with pytest.raises(ValueError, match="gpu_share must be in"):
        keeps_resident(1, 80 * GIB, gpu_share=share)


def test_the_decision_does_not_read_free_memory(monkeypatch):
    """Free memory differs between cards and between concurrent runs: asking for it would make the data path too."""

    def refuse(*args, **kwargs):
        raise AssertionError("free memory was read")

    monkeypatch.setattr(torch.cuda, "mem_get_info", refuse)
    monkeypatch.setattr(loader_module, "total_memory", lambda device: 80 * GIB)
    train, test = loaders(colour_classes())
    assert run_residency(torch.device("cuda"), (train, test)) is True


def _sized(*sizes: int) -> list[TensorLoader]:
    """Loaders over sets of the given numbers of bytes (one image of 3×1×(bytes/3) each: only the size matters)."""

    def images(nbytes: int) -> ImageTensors:
        return ImageTensors(
            torch.zeros((1, 3, 1, nbytes // 3), dtype=torch.uint8), torch.zeros(1, dtype=torch.long), ("a",)
        )

    return [TensorLoader(images(n), batch_size=1, normalization=get_normalization("none")) for n in sizes]


def test_training_and_test_set_are_kept_together_or_not_at_all(monkeypatch):
    monkeypatch.setattr(loader_module, "total_memory", lambda device: 1200)  # a quarter: 300 bytes
    half, other_half = _sized(150, 150)
    assert run_residency(torch.device("cuda"), (half, other_half)) is True
    large, small = _sized(240, 90)  # each would fit alone; together they do not
    assert run_residency(torch.device("cuda"), (large, small)) is False
    assert run_residency(torch.device("cuda"), (large, small), resident=True) is True
    assert run_residency(torch.device("cuda"), (large, small), gpu_share=0.5) is False
    assert run_residency(torch.device("cuda", 0), (small, None)) is True  # a run without a test loader


def test_features_count_nothing(monkeypatch):
    monkeypatch.setattr(loader_module, "total_memory", lambda device: 100)
    features = FeatureLoader(torch.zeros(4, 1000), torch.zeros(4, dtype=torch.long), batch_size=2)
    assert run_residency(torch.device("cuda"), (features, features)) is True
    assert features.on("cuda", resident=True) is features and features.resident is None


@pytest.mark.parametrize("resident", [None, True, False])
def test_on_the_cpu_nothing_is_resident_and_nothing_is_asked(monkeypatch, resident):
    monkeypatch.setattr(loader_module, "total_memory", lambda device: pytest.fail("asked a CPU for GPU memory"))
    train, test = loaders(colour_classes())
    assert run_residency(torch.device("cpu"), (train, test), resident=resident) is None
    placed = train.on("cpu", resident=resident)
    assert placed is train and placed.resident is None
    assert placed.subset(torch.arange(4)).resident is None


@pytest.mark.parametrize("resident", [None, True, False])
def test_fit_on_the_cpu_says_nothing_was_resident(resident):
    train, test = loaders(colour_classes())
    result = fit(tiny_model(), train, test, RECIPE.model_copy(update={"epochs": 1}), progress=False, resident=resident)
    assert result.data_resident is None


# --- the spec key ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "setting", "resident"),
    [
        ("auto", "auto", None),
        (True, "true", True),
        (False, "false", False),
        ("true", "true", True),
        ("false", "false", False),
    ],
)
def test_device_resident_takes_auto_true_and_false(value, setting, resident):
    data = DataConfig(device_resident=value)
    assert (data.device_resident, data.resident) == (setting, resident)
    assert DataConfig.model_validate(data.model_dump(mode="json")) == data  # a written config reads back the same


def test_device_resident_defaults_to_auto():
    assert DataConfig().device_resident == "auto" and DataConfig().resident is None


def test_auto_leaves_every_dump_as_it_was():
    """Fingerprints and records dump the data settings: a spec without the key (or with auto) must dump as before."""
    from synthgap.experiments.blocks import ExperimentData
    from synthgap.experiments.single import TrainRunConfig

    for model in (DataConfig, ExperimentData):
        assert "device_resident" not in model().model_dump(mode="json")
        assert model().model_dump(mode="json") == model(device_resident="auto").model_dump(mode="json")
        assert model().model_dump_json() == model(device_resident="auto").model_dump_json()
        assert model(device_resident=True).model_dump(mode="json")["device_resident"] == "true"
    exclude = {"name": True, "data": {"data_root", "cache_dir", "workers"}}  # as single runs make their fingerprint
    default, auto = TrainRunConfig(), TrainRunConfig(data={"device_resident": "auto"})
    assert default.model_dump(mode="json", exclude=exclude) == auto.model_dump(mode="json", exclude=exclude)
    assert "device_resident" not in default.model_dump(mode="json", exclude=exclude)["data"]


@pytest.mark.parametrize("value", ["yes", "always", 1, None])
def test_a_wrong_value_is_one_error_line_early_and_in_the_full_validation(value):
    from synthgap.config import validate
    from synthgap.experiments.spec import ExperimentSpec

    raw = {"data": {"device_resident": value}, "experiments": [{"kind": "baseline"}]}
    with pytest.raises(SynthgapError) as full:
        validate(ExperimentSpec, raw, where="spec.yaml")
    message = str(full.value)
    assert message.startswith("spec.yaml: data.device_resident: unknown value ") and "\n" not in message
    assert message.endswith("choose from: auto, true, false")
    if isinstance(value, str):  # the early check words names the same way (other types are the full validation's)
        with pytest.raises(SynthgapError) as early:
            speccheck.check_spec_keys(raw, "spec.yaml")
        assert str(early.value) == message


def test_the_early_check_passes_every_valid_setting():
    for value in ("auto", "true", "false", True, False):
        raw = {"data": {"device_resident": value}, "experiments": [{"kind": "baseline"}]}
        assert speccheck.spec_key_problems(raw) == []


# --- the record -----------------------------------------------------------------------------------------------------


def test_a_cpu_compute_record_is_as_it_was():
    compute = Compute("cpu", 2)
    assert set(compute.record("fp32")) == {"device", "threads", "precision", "processor"}
    assert compute.record("fp32") == compute.record("fp32", data_resident=None)


@pytest.mark.parametrize("resident", [True, False])
def test_a_gpu_record_can_say_where_the_images_were(resident):
    record = Compute("cuda", 1).record("fp32", data_resident=resident)
    assert record["data_resident"] is resident
    assert "data_resident" not in Compute("cuda", 1).identity("fp32")  # told, never hashed
