"""Start-up: `synthgap --help` and a typo in a spec are answered without importing the training stack.

Behaviour, not timing (the seconds are measured by benchmarks/bench_startup.py): each command runs in a fresh
interpreter, which then reports the heavy modules it imported. The spec's keys and kinds are checked from the
sources of its classes (`synthgap.speccheck`); here that reading is compared with the classes themselves.
"""

import json
import subprocess
import sys

import pytest
import yaml

from synthgap import speccheck
from synthgap.commands.generate import GENERATORS
from synthgap.errors import SynthgapError

HEAVY = ("torch", "torchvision", "timm", "matplotlib", "pandas", "numpy", "PIL")

DRIVER = """
import contextlib, io, json, sys
from synthgap.cli import main
heavy = set(json.loads(sys.argv[2]))
sys.argv = ["synthgap", *json.loads(sys.argv[1])]
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & heavy)
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(), "heavy": heavy}))
"""


def fresh_synthgap(*args: str) -> dict:
    """`synthgap ARGS` in a new interpreter: exit code, stdout, stderr and the heavy modules it imported."""
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args), json.dumps(HEAVY)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.slow
def test_help_imports_none_of_the_training_stack():
    for args in (["--help"], ["run", "--help"], ["generate", "text2img", "--help"], ["--version"]):
        result = fresh_synthgap(*args)
        assert result["code"] == 0 and result["heavy"] == [], (args, result)


@pytest.mark.slow
@pytest.mark.parametrize("generator", GENERATORS)
def test_a_generator_module_imports_none_of_the_training_stack(generator):
    """A generator's module declares its command, so importing it must stay cheap: torch, PIL and numpy load on
    first use."""
    code = f"import json, sys; import synthgap.generate.{generator}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not {name.split(".")[0] for name in json.loads(done.stdout)} & set(HEAVY)


@pytest.mark.slow
def test_data_describe_of_a_folder_needs_no_torch(image_folder):
    """Describing a folder reads headers with PIL; the training stack (torch, torchvision, pandas) stays out."""
    result = fresh_synthgap("data", "describe", str(image_folder))
    assert result["code"] == 0 and "layout: class folders" in result["out"], result
    assert not {"torch", "torchvision", "timm", "matplotlib", "pandas"} & set(result["heavy"]), result


@pytest.mark.parametrize(
    ("spec", "options", "expected"),
    [
        ({"recipe": {"lrr": 0.1}}, [], "{spec}: recipe.lrr: unknown key (did you mean 'lr'?)"),
        (
            {"experiments": [{"kind": "baselines"}]},
            [],
            "{spec}: experiments.0: unknown kind 'baselines' (did you mean ",
        ),
        (
            {"experiments": [{"kind": "layer_transfer", "nn": [2]}]},
            [],
            "{spec}: experiments.0.layer_transfer.nn: unknown key",
        ),
        ({"experimens": []}, [], "{spec}: experimens: unknown key (did you mean 'experiments'?)"),
        ({}, ["--set", "model.widht=0.5"], "--set model.widht=0.5: model.widht: unknown key (did you mean 'width'?)"),
        ({}, ["--backend", "rey"], "--backend: unknown backend 'rey' (did you mean 'ray'?)"),
        ({}, ["--dryrun"], "no such option: --dryrun (did you mean --dry-run?)"),
        ({}, ["--seeds", "0,x"], "--seeds: expected comma-separated integers, got '0,x'"),
        ({"recipe": {"epochs": -3}}, [], "{spec}: recipe.epochs: must be at least 1, got -3"),
        ({"recipe": {"precision": "bf32"}}, [], "{spec}: recipe.precision: unknown value 'bf32' (did you mean "),
        ({}, ["--set", "recipe.lr=-1"], "--set recipe.lr=-1: recipe.lr: must be greater than 0.0, got -1"),
    ],
    ids=[
        "key",
        "kind",
        "block-key",
        "top-level-key",
        "set-key",
        "backend",
        "option",
        "seeds",
        "value",
        "literal",
        "set-value",
    ],
)
@pytest.mark.slow
def test_a_spec_typo_is_one_line_before_torch_is_imported(tmp_path, spec, options, expected):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"experiments": [{"kind": "baseline"}], **spec}))
    result = fresh_synthgap("run", str(path), "--dry-run", *options)
    assert result["code"] == 2 and result["out"] == ""
    (line,) = result["err"].splitlines()
    assert line.startswith(f"synthgap: error: {expected.format(spec=path)}"), line
    assert result["heavy"] == []


@pytest.mark.slow
def test_an_error_only_the_full_validation_finds_is_still_one_line(tmp_path):
    """An N beyond the model's layers needs the model family: the spec's classes (and torch) are imported."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"experiments": [{"kind": "layer_transfer", "n": [99]}]}))
    result = fresh_synthgap("run", str(path), "--dry-run")
    assert result["code"] == 2
    assert result["err"] == f"synthgap: error: {path}: experiments.0: layer_transfer n (resnet18 has 18 layers): N " \
                            "must be in 0..18, got [99]\n"  # fmt: skip


# --- the spec's shape as read from the sources, against the classes ------------------------------------------------


def forbids_others(model) -> bool:
    return model.model_config.get("extra") == "forbid"


def test_the_shape_read_from_the_sources_is_the_spec_classes():
    from synthgap.experiments.kinds import KINDS
    from synthgap.experiments.spec import ExperimentSpec

    shape = speccheck.spec_shape()
    assert shape is not None
    assert shape.top.keys == tuple(ExperimentSpec.model_fields) and shape.top.forbids_others
    sections = {name: field.annotation for name, field in ExperimentSpec.model_fields.items()
                if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields")}  # fmt: skip
    assert set(shape.sections) == set(sections) == {"data", "model", "recipe", "resources"}
    for name, model in sections.items():
        assert shape.sections[name].keys == tuple(model.model_fields), name
        assert shape.sections[name].forbids_others == forbids_others(model), name
    assert set(shape.kinds) == set(KINDS)
    for name in KINDS:
        block = KINDS.get(name).block
        assert shape.kinds[name].keys == tuple(block.model_fields), name
        assert shape.kinds[name].forbids_others == forbids_others(block), name


TYPOS = [
    {"recipe": {"lrr": 0.1}},
    {"recipes": {}},
    {"data": {"per_clas": 3}},
    {"model": {"widht": 0.5}},
    {"resources": {"gpu": 1}},
    {"experiments": [{"kind": "baseline", "side": ["real"]}]},
    {"experiments": [{"kind": "baseline"}, {"kind": "layer_transfers"}]},
    {"experiments": [{"kind": "data_reduction", "fraction": [0.5]}]},
    {"experiments": [{"kind": "layer_transfer", "zzz": 1}]},
    {"recipe": {"epochs": 0, "lr": -0.5, "label_smoothing": 1}},
    {"recipe": {"schedule": "linear", "tta": "crop"}},
    {"data": {"resolution": 0}},
]


@pytest.mark.parametrize("spec", TYPOS, ids=[json.dumps(t) for t in TYPOS])
def test_the_early_check_and_the_full_validation_say_the_same(spec):
    from synthgap.config import validate
    from synthgap.experiments.spec import ExperimentSpec

    raw = {"experiments": [{"kind": "baseline"}], **spec}
    with pytest.raises(SynthgapError) as early:
        speccheck.check_spec_keys(raw, "spec.yaml")
    with pytest.raises(SynthgapError) as full:
        validate(ExperimentSpec, raw, where="spec.yaml")
    assert str(early.value) == str(full.value)


def test_a_valid_spec_passes_the_early_check():
    from tests.test_cli import CONFIGS

    for path in sorted(CONFIGS.glob("*.yaml")):
        assert speccheck.spec_key_problems(yaml.safe_load(path.read_text())) == [], path


def test_sources_it_cannot_read_leave_every_decision_to_the_full_validation(tmp_path, monkeypatch):
    monkeypatch.setattr(speccheck, "PACKAGE", tmp_path)  # no sources there
    speccheck.spec_shape.cache_clear()
    speccheck._tree.cache_clear()
    try:
        assert speccheck.spec_shape() is None
        speccheck.check_spec_keys({"recipe": {"lrr": 1}, "experiments": [{"kind": "nope"}]}, "spec.yaml")  # no error
    finally:
        speccheck.spec_shape.cache_clear()
        speccheck._tree.cache_clear()


def test_the_n_options_read_from_the_sources_are_the_registry_s():
    from synthgap.experiments.kinds import KINDS

    registered = {name: KINDS.get(name).n_option for name in KINDS}
    expected = {name: (option.key, option.clears) for name, option in registered.items() if option is not None}
    assert speccheck.n_options() == expected
    assert expected["layer_transfer"] == ("n", ("levels", "budget"))
