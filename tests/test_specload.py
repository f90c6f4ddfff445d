"""One spec loader for the command line and the Python API: the spec read once, the options layered on it, and an
error blamed on the layer that caused it, in the caller's own words."""

from __future__ import annotations

import re

import pytest
import yaml

from synthgap import specload
from synthgap.errors import SynthgapError
from synthgap.specload import RunOptions, keyword_label, load_spec
from tests.specs import tiny_raw

LAYERS = [{"kind": "baseline"}, {"kind": "layer_transfer", "n": [2]}]


def spec_file(tmp_path, **changes):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(None, LAYERS, **changes)))
    return path


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RunOptions(n=[25]), "n=[25]: experiments.1: layer_transfer n (resnet18 has 18 layers): N must be in 0..18"),
        (RunOptions(epochs=0), "epochs=0: recipe.epochs: must be at least 1, got 0"),
        (RunOptions(overrides={"recipe.lrr": 0.1}), "overrides['recipe.lrr']=0.1: recipe.lrr: unknown key"),
        (RunOptions(overrides=["recipe.lr=-1"]), "overrides 'recipe.lr=-1': recipe.lr: must be greater than 0.0"),
        # the second item is at fault, not the first
        (RunOptions(overrides={"recipe.lr": 0.5, "model.widht": 1}), "overrides['model.widht']=1: model.widht:"),
        (RunOptions(seeds="0,1"), "seeds: expected a list of whole numbers such as [0, 1], got '0,1'"),
    ],
)
def test_an_error_an_option_causes_names_that_option(tmp_path, options, message):
    with pytest.raises(SynthgapError) as caught:
        load_spec(spec_file(tmp_path), options)
    assert str(caught.value).startswith(message), str(caught.value)


def test_an_error_of_the_spec_itself_names_the_spec_even_with_options(tmp_path):
    path = spec_file(tmp_path, recipe={"epochs": -3})
    with pytest.raises(SynthgapError, match=re.escape(f"{path}: recipe.epochs: must be at least 1, got -3")):
        load_spec(path, RunOptions(n=[2], overrides={"recipe.lr": 0.5}))


def test_a_caller_names_its_options_its_own_way(tmp_path):
    def flag(field, value):
        return f"--{field} {value}" if field != "overrides" else f"--set {value}"

    with pytest.raises(SynthgapError, match=re.escape("--n [25]: experiments.1:")):
        load_spec(spec_file(tmp_path), RunOptions(n=[25]), flag)
    with pytest.raises(SynthgapError, match=re.escape("--set recipe.lrr=1: recipe.lrr: unknown key")):
        load_spec(spec_file(tmp_path), RunOptions(overrides=["recipe.lrr=1"]), flag)


def test_the_file_is_read_once_when_the_spec_is_valid_and_once_more_after_an_error(tmp_path, monkeypatch):
    reads = []
    real = specload.mapping_source
    monkeypatch.setattr(specload, "mapping_source", lambda *args: reads.append(args) or real(*args))
    path = spec_file(tmp_path)
    spec = load_spec(path, RunOptions(n=[4], epochs=2, overrides={"recipe.lr": 0.05}))
    assert [block.n for block in spec.experiments[1:]] == [[4]]
    assert spec.recipe.epochs == 2 and spec.recipe.lr == 0.05
    assert len(reads) == 1
    reads.clear()
    with pytest.raises(SynthgapError):
        load_spec(path, RunOptions(n=[25], epochs=2, overrides={"recipe.lr": 0.05}))
    assert len(reads) == 2  # the load, then one read for finding the option to blame


def test_a_validated_spec_is_taken_with_the_options_applied(tmp_path):
    spec = load_spec(spec_file(tmp_path))
    again = load_spec(spec, RunOptions(epochs=3))
    assert again.recipe.epochs == 3 and spec.recipe.epochs == 1
    with pytest.raises(SynthgapError, match=re.escape("epochs=0: recipe.epochs: must be at least 1")):
        load_spec(spec, RunOptions(epochs=0))


def test_keyword_labels_read_as_python():
    assert keyword_label("n", [25]) == "n=[25]"
    assert keyword_label("overrides", ("recipe.lr", -1)) == "overrides['recipe.lr']=-1"
    assert keyword_label("overrides", "recipe.lr=-1") == "overrides 'recipe.lr=-1'"


def test_n_sets_the_blocks_whose_kind_takes_it_and_drops_what_it_replaces(tmp_path):
    blocks = [
        {"kind": "layer_transfer", "levels": [0, 16], "budget": 6},
        {"kind": "stitching", "n": [4]},  # has an `n`, but its kind takes no --n
    ]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(None, blocks)))
    raw, _ = specload.spec_data(path, RunOptions(n=[2, 8]))
    transfer, stitching = raw["experiments"]
    assert transfer == {"kind": "layer_transfer", "n": [2, 8]}
    assert stitching["n"] == [4]
