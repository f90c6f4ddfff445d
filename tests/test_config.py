import re

import pytest
import yaml

from synthgap.config import parse_override, save_config, set_dotted
from synthgap.errors import SynthgapError
from synthgap.experiments.single import TrainRunConfig
from synthgap.specload import layered, mapping_source


def load_config(cls, path=None, values=None):
    """A config as `synthgap.train` loads one: the file (if any), then the dotted values that are not None."""
    raw, where = mapping_source(path, "config") if path is not None else ({}, "options")
    return layered(cls, raw, where, values or {})


def test_defaults_then_yaml_then_overrides(tmp_path):
    spec = tmp_path / "run.yaml"
    spec.write_text(yaml.safe_dump({"seed": 3, "recipe": {"epochs": 7, "lr": 0.05}, "model": {"width": 0.5}}))
    config = load_config(TrainRunConfig, spec, {"recipe.epochs": 2, "data.train": "cifake:real", "seed": None})
    assert config.recipe.epochs == 2  # command line beats YAML
    assert config.recipe.lr == 0.05  # YAML beats defaults
    assert config.seed == 3  # an override of None leaves the YAML value
    assert config.model.width == 0.5 and config.recipe.batch_size == 128
    assert config.data.train == "cifake:real"


def test_saved_config_loads_back_identically(tmp_path):
    config = load_config(TrainRunConfig, None, {"recipe.epochs": 3, "model.stem": "cifar"})
    save_config(config, tmp_path / "config.yaml")
    assert load_config(TrainRunConfig, tmp_path / "config.yaml") == config


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("recipe:\n  epochz: 3\n", "recipe.epochz: unknown key"),
        ("recipe:\n  epochs: 0\n", "recipe.epochs"),
        ("seed: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("data:\n  train: nowhere:x\n", "unknown data source 'nowhere'"),
    ],
)
def test_bad_configs_are_one_clear_error(tmp_path, content, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(content)
    with pytest.raises(SynthgapError, match=message):
        load_config(TrainRunConfig, spec)


def test_missing_config_file(tmp_path):
    with pytest.raises(SynthgapError, match="config file not found"):
        load_config(TrainRunConfig, tmp_path / "absent.yaml")


def test_a_set_value_is_read_as_plain_yaml():
    assert parse_override("recipe.lr = 0.05") == ("recipe.lr", 0.05)
    assert parse_override("seeds=[0, 1]") == ("seeds", [0, 1])
    assert parse_override("name=a=b") == ("name", "a=b")  # only the first '=' separates the key


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("name=[unclosed", "--set 'name=[unclosed': the value is not a plain YAML value (expected ',' or ']'"),
        ("x=!!python/object/apply:os.system [echo]", "could not determine a constructor for the tag"),
        ("x=a: b: c", "mapping values are not allowed here"),
        ("novalue", "--set expects KEY=VALUE, got 'novalue'"),
    ],
)
def test_a_bad_set_value_is_one_clear_error(item, message):
    with pytest.raises(SynthgapError, match=re.escape(message)):
        parse_override(item)


def test_setting_below_a_plain_value_is_one_clear_error():
    tree = {"name": "x", "recipe": {"lr": 0.1}}
    with pytest.raises(SynthgapError, match=r"cannot set name\.x\.y: name is not a mapping"):
        set_dotted(tree, "name.x.y", 1)
    set_dotted(tree, "recipe.extra.depth", 2)
    assert tree["recipe"] == {"lr": 0.1, "extra": {"depth": 2}}


def test_a_number_indexes_a_list_of_blocks():
    tree = {"experiments": [{"kind": "baseline"}, {"kind": "layer_transfer", "n": [4]}]}
    set_dotted(tree, "experiments.1.n", [4, 8])
    set_dotted(tree, "experiments.0.augmentation", "none")
    assert tree["experiments"] == [
        {"kind": "baseline", "augmentation": "none"},
        {"kind": "layer_transfer", "n": [4, 8]},
    ]
    for key in ("experiments.2.n", "experiments.first.n"):
        with pytest.raises(SynthgapError, match=r"cannot set .*: experiments is a list of 2; index it with 0\.\.1"):
            set_dotted(tree, key, 1)
