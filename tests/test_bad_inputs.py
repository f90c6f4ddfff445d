"""Bad input meets one line: `synthgap: error: ...` on stderr, exit code 2, no traceback.

First the corpus: malformed specs, command-line values and files, each given to `synthgap run` with and without
`--dry-run` (both must reject it with the same line, before anything is decoded or trained), or to `synthgap train`.
Then file-system failures (`os_error_message`): real situations where a test can make them (a file where a folder is
expected, a missing file, a folder where a file is expected); errno-built errors where it cannot (tests run as root,
so permission bits do not stop them, and there is no read-only or full file system to write to). End-to-end checks
of divergence, damaged caches, locks and refused writes are in tests/experiments/test_reliability.py.
"""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

from synthgap import cli
from synthgap.errors import os_error_message
from synthgap.io import append_jsonl, atomic_write_json
from tests.specs import tiny_raw


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Nothing here should decode, but if it did, never into the user's cache."""
    monkeypatch.setenv("SYNTHGAP_CACHE_DIR", str(tmp_path / "cache"))


def synthgap(capsys, *args) -> tuple[int, str, str]:
    """`synthgap ARGS` as the console script runs it (`cli.main`), in this process: exit code, stdout, stderr."""
    with mock.patch.object(sys, "argv", ["synthgap", *map(str, args)]):
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def only_line(err: str) -> str:
    """The one line of `err`, which must be a `synthgap: error:` line."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("synthgap: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- the corpus: specs ----------------------------------------------------------------------------------------

SPEC = tiny_raw(
    None, [{"kind": "baseline"}], recipe={"batch_size": 8}, name="bad", data={"per_class": 3, "test_per_class": 3}
)
FINITE = "must be a finite number, got"
AUGMENTATIONS = "augmix, autoaugment, autoaugment_cifar10, cutout, none, randaugment, rrc, standard, trivialaugment"
ALL_SHORT = ", ".join(
    f"{name} (3)" for name in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
)

# name: (dotted key → value in SPEC, what the error line says after "synthgap: error: ")
BAD_SPECS = {
    "lr-inf": ({"recipe.lr": float("inf")}, f"{{spec}}: recipe.lr: {FINITE}"),
    "lr-nan": ({"recipe.lr": float("nan")}, f"{{spec}}: recipe.lr: {FINITE}"),
    "lr-nan-word": ({"recipe.lr": "nan"}, f"{{spec}}: recipe.lr: {FINITE}"),
    "weight-decay-nan": ({"recipe.weight_decay": float("nan")}, f"{{spec}}: recipe.weight_decay: {FINITE}"),
    "lr-zero": ({"recipe.lr": 0}, "{spec}: recipe.lr: must be greater than 0.0, got 0"),
    "width-zero": ({"model.width": 0}, "width multiplier must be positive, got width=0.0"),
    "width-negative": ({"model.width": -0.5}, "width multiplier must be positive, got width=-0.5"),
    "unknown-model": ({"model.name": "resnet9000"}, "unknown model family 'resnet9000'; choose from: resnet18"),
    "unknown-augmentation": (
        {"recipe.augmentation": "sparkle"},
        f"{{spec}}: recipe.augmentation: unknown augmentation preset 'sparkle'; choose from: {AUGMENTATIONS}",
    ),
    "unknown-normalization": (
        {"recipe.normalization": "nope"},
        "{spec}: recipe.normalization: unknown normalization 'nope'; choose from: imagenet, cifar10, none",
    ),
    "unknown-test-normalization": (
        {"recipe.test_normalization": "nope"},
        "{spec}: recipe.test_normalization: unknown normalization 'nope'",
    ),
    "unknown-key": ({"recipe.lrr": 0.1}, "{spec}: recipe.lrr: unknown key (did you mean 'lr'?)"),
    "unknown-key-far-from-any": (
        {"recipe.sparkle": 1},
        "{spec}: recipe.sparkle: unknown key; known keys: preset, epochs, batch_size, lr,",
    ),
    "unknown-top-level-key": ({"experiment": []}, "{spec}: experiment: unknown key (did you mean 'experiments'?)"),
    "unknown-block-key": (
        {"experiments": [{"kind": "layer_transfer", "nn": [2]}]},
        "{spec}: experiments.0.layer_transfer.nn: unknown key (did you mean 'n'?)",
    ),
    "unknown-kind": (
        {"experiments": [{"kind": "baselines"}]},
        "{spec}: experiments.0: unknown kind 'baselines' (did you mean 'baseline'?); choose from: augmentation, "
        "baseline, curation, data_reduction, distillation, exchange_rate, generator, layer_transfer, mixing, "
        "normalization, stitching, texture_shape",
    ),
    "no-kind": ({"experiments": [{"sides": ["real"]}]}, "{spec}: experiments.0: missing key 'kind'"),
    "unknown-side": (
        {"experiments": [{"kind": "baseline", "sides": ["reall"]}]},
        "{spec}: experiments.0.baseline.sides.0: unknown value 'reall' (did you mean 'real'?); choose from: real, "
        "synthetic",
    ),
    "n-neither-list-nor-auto": (
        {"experiments": [{"kind": "layer_transfer", "n": "all"}]},
        "{spec}: experiments.0.layer_transfer.n: expected a list or 'auto', got 'all'",
    ),
    "n-beyond-the-layers": (
        {"experiments": [{"kind": "baseline"}, {"kind": "layer_transfer", "n": [25]}]},
        "{spec}: experiments.1: layer_transfer n (resnet18 has 18 layers): N must be in 0..18, got [25]",
    ),
    "levels-without-auto": (
        {"experiments": [{"kind": "layer_transfer", "n": [2], "levels": [0.3]}]},
        "{spec}: experiments.0.layer_transfer: levels and budget go with n: auto",
    ),
    "epochs-fraction": ({"recipe.epochs": 2.5}, "{spec}: recipe.epochs: expected a whole number, got 2.5"),
    "normalization-half-given": (
        {"recipe.normalization": {"mean": [0.5, 0.5, 0.5]}},
        "{spec}: recipe.normalization.std: required, but not given",
    ),
    "data-not-a-mapping": ({"data": 3}, "{spec}: data: expected a mapping (key: value), got 3"),
    "empty-seeds": ({"seeds": []}, "{spec}: seeds: must not be empty"),
    "empty-block-seeds": (
        {"experiments": [{"kind": "baseline", "seeds": []}]},
        "{spec}: experiments.0.baseline.seeds: must not be empty",
    ),
    "unknown-data-source": ({"data.real": "nowhere:x"}, "unknown data source 'nowhere'"),
    "per-class-beyond-every-class": (
        {"data.per_class": 4},
        f"per_class=4, but cifake:real (train) has fewer images in 10 class(es): {ALL_SHORT}",
    ),
    "test-per-class-beyond-every-class": (
        {"data.test_per_class": 4},
        f"test_per_class=4, but cifake:real (test) has fewer images in 10 class(es): {ALL_SHORT}",
    ),
}


def write_spec(folder: Path, data_root: Path, changes: dict, name: str = "spec.yaml") -> Path:
    spec = json.loads(json.dumps(SPEC))
    spec["data"]["data_root"] = str(data_root)
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = spec
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def assert_run_and_dry_run_reject(capsys, spec: Path, out: Path, expected: str, *extra: str) -> None:
    """`synthgap run --dry-run` and `synthgap run` both stop with the same line, which starts with `expected` (a
    list of known names may follow), and nothing was recorded."""
    lines = []
    for dry_run in (["--dry-run"], []):
        code, _, err = synthgap(capsys, "run", spec, "--out", out, "-q", *extra, *dry_run)
        assert code == 2, err
        lines.append(only_line(err))
    assert lines[0] == lines[1]
    assert lines[0].startswith(f"synthgap: error: {expected}"), lines[0]
    assert not (out / "results.jsonl").exists()


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_bad_spec_is_rejected_by_dry_run_and_run_with_the_same_line(cifake_root, tmp_path, capsys, case):
    changes, expected = BAD_SPECS[case]
    spec = write_spec(tmp_path, cifake_root, changes)
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", expected.format(spec=spec))


def test_explicit_normalization_statistics_are_still_accepted(cifake_root, tmp_path, capsys):
    """The name check leaves `{mean, std}` values (e.g. from `synthgap data stats --json`) alone."""
    stats = {"mean": [0.5, 0.4, 0.3], "std": [0.25, 0.25, 0.25]}
    spec = write_spec(tmp_path, cifake_root, {"recipe.normalization": stats, "recipe.test_normalization": "cifar10"})
    code, out, err = synthgap(capsys, "run", spec, "--out", tmp_path / "out", "--dry-run")
    assert code == 0 and "valid" in out, err


def remove_images(root: Path, split: str, side: str, names: list[str]) -> None:
    for name in names:
        (root / "cifake" / split / side / name).unlink()


@pytest.mark.parametrize(
    ("split", "side", "removed", "expected"),
    [
        (
            "train",
            "REAL",
            ["2 (5).jpg"],
            "per_class=3, but cifake:real (train) has fewer images in 1 class(es): deer (2)",
        ),
        (
            "train",
            "FAKE",
            ["1 (4).jpg", "10 (9).jpg", "2 (9).jpg"],
            "per_class=3, but cifake:synthetic (train) has fewer images in 2 class(es): ship (1), cat (2)",
        ),
        (
            "test",
            "REAL",
            ["10 (2).jpg"],
            "test_per_class=3, but cifake:real (test) has fewer images in 1 class(es): automobile (2)",
        ),
    ],
    ids=["real", "synthetic", "test"],
)
def test_a_side_short_of_per_class_is_named_with_every_short_class(
    cifake_root, tmp_path, capsys, split, side, removed, expected
):
    """Only one side is short; the line names that side and each of its short classes with its count (the
    smallest first), whichever side it is."""
    remove_images(cifake_root, split, side, removed)
    spec = write_spec(tmp_path, cifake_root, {})
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", expected)


def test_every_short_side_is_named_in_one_line(cifake_root, tmp_path, capsys):
    """Two sides short at once: one line names both, so one fix (or one --per-class) settles it."""
    remove_images(cifake_root, "train", "REAL", ["2 (5).jpg"])
    remove_images(cifake_root, "train", "FAKE", ["1 (4).jpg", "10 (9).jpg", "2 (9).jpg"])
    spec = write_spec(tmp_path, cifake_root, {})
    expected = (
        "per_class=3, but cifake:real (train) has fewer images in 1 class(es): deer (2); "
        "per_class=3, but cifake:synthetic (train) has fewer images in 2 class(es): ship (1), cat (2)"
    )
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", expected)


def test_a_blocks_unknown_augmentation_is_rejected_by_dry_run(cifake_root, tmp_path, capsys):
    spec = write_spec(
        tmp_path, cifake_root, {"experiments": [{"kind": "layer_transfer", "n": [2], "augmentation": "sparkle"}]}
    )
    code, _, err = synthgap(capsys, "run", spec, "--out", tmp_path / "out", "--dry-run")
    assert code == 2 and "unknown augmentation preset 'sparkle'" in only_line(err)


# --- the corpus: files and command-line values ----------------------------------------------------------------


def _no_spec(folder: Path) -> Path:
    return folder / "missing.yaml"


def _empty_spec(folder: Path) -> Path:
    (folder / "empty.yaml").write_text("")
    return folder / "empty.yaml"


def _truncated_spec(folder: Path) -> Path:
    (folder / "cut.yaml").write_text("name: cut\nexperiments:\n  - {kind: [")
    return folder / "cut.yaml"


def _list_spec(folder: Path) -> Path:
    (folder / "list.yaml").write_text("- kind: baseline\n")
    return folder / "list.yaml"


BAD_FILES = {
    "missing": (_no_spec, "config file not found: {spec}"),
    "empty": (_empty_spec, "{spec}: experiments: required, but not given"),
    "truncated": (_truncated_spec, "{spec}: not valid YAML: "),
    "a-list": (_list_spec, "{spec}: expected a mapping at the top level, got list"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_malformed_spec_file_is_one_line(tmp_path, capsys, case):
    make, expected = BAD_FILES[case]
    spec = make(tmp_path)
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", expected.format(spec=spec))


def test_a_spec_that_is_not_text_is_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"\x00\xff\xfe binary")
    code, _, err = synthgap(capsys, "run", spec, "--dry-run")
    assert code == 2 and str(spec) in only_line(err)


@pytest.mark.parametrize("content", ['{"run": "baseline-real-s0", "ki', "\0\0\0\n"], ids=["torn", "zeros"])
def test_a_corrupt_results_file_is_one_line(cifake_root, tmp_path, capsys, content):
    """results.jsonl is only ever replaced whole, so a torn line means someone else damaged it: stop and name it
    rather than guess which runs finished."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.jsonl").write_text(content)
    spec = write_spec(tmp_path, cifake_root, {})
    code, _, err = synthgap(capsys, "run", spec, "--out", tmp_path / "out", "--dry-run")
    assert code == 2 and "results.jsonl" in only_line(err)


def test_out_naming_a_file_is_one_line(cifake_root, tmp_path, capsys):
    spec = write_spec(tmp_path, cifake_root, {})
    out = tmp_path / "out"
    out.write_text("I am a file")
    code, _, err = synthgap(capsys, "run", spec, "--out", out, "-q")
    assert code == 2
    assert only_line(err) == f"synthgap: error: cannot use {out}: it is a file, not a folder"
    assert out.read_text() == "I am a file"


@pytest.mark.parametrize("where", ["out", "parent"])
def test_dry_run_refuses_an_out_that_is_a_file_as_the_run_does(cifake_root, tmp_path, capsys, where):
    spec = write_spec(tmp_path, cifake_root, {})
    (tmp_path / "file").write_text("I am a file")
    out = tmp_path / "file" if where == "out" else tmp_path / "file" / "exp"
    blocker = "it" if where == "out" else tmp_path / "file"
    expected = f"cannot use {out}: {blocker} is a file, not a folder"
    assert_run_and_dry_run_reject(capsys, spec, out, expected)
    assert (tmp_path / "file").read_text() == "I am a file"


def write_manifest_with_bad_line(folder: Path, line: str, number: int = 5) -> Path:
    """A generate output folder whose manifest has `line` at line `number`; the lines before it are well formed
    (their files need not exist: the whole manifest is read before any file is looked at)."""
    folder.mkdir(parents=True)
    good = [
        json.dumps({"class": "airplane", "file": f"airplane/airplane_{i:05d}.png", "sha256": "0" * 64})
        for i in range(number - 1)
    ]
    (folder / "manifest.jsonl").write_text("\n".join([*good, line]) + "\n")
    return folder / "manifest.jsonl"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[1, 2, 3]", "expected a JSON object, got list"),
        ('{"file": "airplane/a.png", "sha256": "' + "0" * 64 + '"}', "class missing or not a non-empty string"),
        ('{"class": "airplane", "fi', "not valid JSON"),
    ],
    ids=["a-list", "no-class", "torn"],
)
def test_a_generated_manifest_line_of_the_wrong_shape_is_one_line(cifake_root, tmp_path, capsys, line, problem):
    manifest = write_manifest_with_bad_line(tmp_path / "gen", line)
    spec = write_spec(tmp_path, cifake_root, {"data.synthetic": f"generated:{tmp_path / 'gen'}"})
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", f"corrupt {manifest}, line 5: {problem}")


def test_a_generated_manifest_naming_a_file_outside_its_folder_is_one_line(cifake_root, tmp_path, capsys):
    (tmp_path / "outside.png").write_bytes(b"not read")
    line = json.dumps({"class": "airplane", "file": "../outside.png", "sha256": "0" * 64})
    manifest = write_manifest_with_bad_line(tmp_path / "gen", line, number=2)
    spec = write_spec(tmp_path, cifake_root, {"data.synthetic": f"generated:{tmp_path / 'gen'}"})
    expected = f"{manifest}, line 2: file '../outside.png' lies outside {tmp_path / 'gen'}"
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", expected)


BAD_RUN_OPTIONS = {  # an error an option brings about names the option, not the spec file
    "seeds-not-numbers": (["--seeds", "a,b"], "--seeds: expected comma-separated integers, got 'a,b'"),
    "seeds-empty": (["--seeds", ","], "--seeds ,: seeds: must not be empty"),
    "set-without-value": (["--set", "recipe.lr"], "--set expects KEY=VALUE, got 'recipe.lr'"),
    "set-without-key": (["--set", "=3"], "--set expects KEY=VALUE, got '=3'"),
    "set-unclosed": (["--set", "name=[unclosed"], "--set 'name=[unclosed': the value is not a plain YAML value"),
    "set-python-tag": (
        ["--set", 'x=!!python/object/apply:os.system ["echo"]'],
        "--set 'x=!!python/object/apply:os.system [\"echo\"]': the value is not a plain YAML value (could not "
        "determine a constructor for the tag",
    ),
    "set-below-a-string": (["--set", "name.x=1"], "--set name.x=1: cannot set name.x: name is not a mapping"),
    "set-nan": (["--set", "recipe.lr=.nan"], f"--set recipe.lr=.nan: recipe.lr: {FINITE} nan"),
    "set-inf": (["--set", "recipe.lr=inf"], f"--set recipe.lr=inf: recipe.lr: {FINITE} 'inf'"),
    "set-unknown-key": (
        ["--set", "recipe.lrr=0.1"],
        "--set recipe.lrr=0.1: recipe.lrr: unknown key (did you mean 'lr'?)",
    ),
    "set-unknown-kind": (
        ["--set", "experiments=[{kind: baselines}]"],
        "--set 'experiments=[{{kind: baselines}}]': experiments.0: unknown kind 'baselines' (did you mean 'baseline'?)",
    ),
    "second-set-to-blame": (
        ["--set", "recipe.lr=0.05", "--set", "recipe.momentum=2"],
        "--set recipe.momentum=2: recipe.momentum: must be less than 1.0, got 2",
    ),
    "width-zero": (["--width", "0"], "--width 0: width multiplier must be positive, got width=0.0"),
    "per-class-zero": (
        ["--per-class", "0"],
        "--per-class 0: data.per_class: must be a positive number, {{max: N}}, balanced or matched; got 0",
    ),
    "epochs-zero": (["--epochs", "0"], "--epochs 0: recipe.epochs: must be at least 1, got 0"),
    "epochs-not-a-number": (["--epochs", "x"], "--epochs: expected a whole number, got 'x'; see 'synthgap run --help'"),
    "unknown-option": (["--dryrun"], "no such option: --dryrun (did you mean --dry-run?); see 'synthgap run --help'"),
    "unknown-backend": (
        ["--backend", "rey"],
        "--backend: unknown backend 'rey' (did you mean 'ray'?); choose from: local, ray, slurm",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RUN_OPTIONS))
def test_a_bad_run_option_is_one_line(cifake_root, tmp_path, capsys, case):
    options, expected = BAD_RUN_OPTIONS[case]
    spec = write_spec(tmp_path, cifake_root, {})
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", expected.format(spec=spec), *options)


def test_an_error_an_option_brings_about_names_the_option_and_one_in_the_file_names_the_file(
    cifake_root, tmp_path, capsys
):
    blocks = [{"kind": "baseline"}, {"kind": "layer_transfer", "n": [2]}]
    spec = write_spec(tmp_path, cifake_root, {"experiments": blocks})
    too_many = "experiments.1: layer_transfer n (resnet18 has 18 layers): N must be in 0..18, got [25]"
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", f"--n 25: {too_many}", "--n", "25")
    blocks[1]["n"] = [25]
    spec = write_spec(tmp_path, cifake_root, {"experiments": blocks})  # the same N, now from the file
    assert_run_and_dry_run_reject(capsys, spec, tmp_path / "out", f"{spec}: {too_many}", "--n", "25", "--epochs", "1")


TRAIN_FINITE = "must be a finite number, got nan"  # train's options are worded by config.validate
BAD_TRAIN_OPTIONS = {
    "lr-nan": (["--lr", "nan"], f"options: recipe.lr: {TRAIN_FINITE}"),
    "lr-inf": (["--lr", "inf"], "options: recipe.lr: must be a finite number, got inf"),
    "width-negative": (["--width", "-1"], "width multiplier must be positive, got width=-1.0"),
    "unknown-model": (["--model", "resnet9000"], "unknown model family 'resnet9000'; choose from: resnet18"),
    "unknown-augmentation": (
        ["--augmentation", "sparkle"],
        f"options: recipe.augmentation: unknown augmentation preset 'sparkle'; choose from: {AUGMENTATIONS}",
    ),
    "unknown-normalization": (
        ["--normalization", "nope"],
        "options: recipe.normalization: unknown normalization 'nope'; choose from: imagenet, cifar10",
    ),
    "unknown-data": (["--test-data", "nowhere:x"], "unknown data source 'nowhere'"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN_OPTIONS))
def test_a_bad_train_option_is_one_line_before_anything_is_written(cifake_root, tmp_path, capsys, case):
    options, expected = BAD_TRAIN_OPTIONS[case]
    out = tmp_path / "out"
    code, _, err = synthgap(
        capsys, "train", "--train-data", "cifake:real", "--data-root", cifake_root, "--out", out, "-q", *options
    )
    assert code == 2
    assert only_line(err).startswith(f"synthgap: error: {expected}")
    assert not (out / "results.jsonl").exists()


# In a real process (no pytest capture, no logging handlers), several cases in one interpreter to save start-ups.
DRIVER = """
import contextlib, io, json, sys, traceback
from synthgap.cli import main
results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.argv = ["synthgap", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code
        except BaseException:
            traceback.print_exc()  # what the interpreter would print
            code = 1
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


@pytest.mark.slow
def test_bad_inputs_in_a_real_process_are_one_line_without_traceback(cifake_root, tmp_path):
    nan_spec = write_spec(tmp_path, cifake_root, {"recipe.lr": float("nan")}, name="nan.yaml")
    (tmp_path / "file").write_text("")
    cases = [
        ["run", str(nan_spec), "--dry-run"],
        ["run", str(nan_spec), "--out", str(tmp_path / "out"), "-q"],
        ["run", str(_truncated_spec(tmp_path)), "--dry-run"],
        ["run", str(write_spec(tmp_path, cifake_root, {})), "--out", str(tmp_path / "file"), "-q"],
        ["train", "--train-data", "cifake:real", "--data-root", str(cifake_root), "--lr", "nan", "-q"],
        ["train", "--train-data", "cifake:real", "--data-root", str(cifake_root), "--augmentation", "x", "-q"],
    ]
    env = {**os.environ, "SYNTHGAP_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    for args, (code, out, err) in zip(cases, json.loads(done.stdout), strict=True):
        assert code == 2 and out == "", (args, out, err)
        only_line(err)


# --- file-system errors become one line ------------------------------------------------------------------------


def raised(action) -> OSError:
    with pytest.raises(OSError) as caught:
        action()
    return caught.value


def test_out_naming_a_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("I am a file")
    exc = raised(lambda: append_jsonl(out / "results.jsonl", {"run": "a"}))
    assert os_error_message(exc) == f"cannot use {out / 'results.jsonl'}: {out} is a file, not a folder"


def test_a_file_below_a_file(tmp_path):
    (tmp_path / "out").write_text("")
    target = tmp_path / "out" / "runs" / "x.json"
    exc = raised(lambda: atomic_write_json(target, {}))
    assert os_error_message(exc) == f"cannot use {target}: {tmp_path / 'out'} is a file, not a folder"


def test_mkdir_over_a_file(tmp_path):
    (tmp_path / "out").write_text("")
    exc = raised(lambda: (tmp_path / "out").mkdir())
    assert os_error_message(exc) == f"cannot use {tmp_path / 'out'}: it is a file, not a folder"


def test_open_a_missing_file(tmp_path):
    exc = raised(lambda: (tmp_path / "spec.yaml").read_text())
    assert os_error_message(exc) == f"cannot find {tmp_path / 'spec.yaml'}: no such file or folder"


def test_write_over_a_folder(tmp_path):
    (tmp_path / "report.md").mkdir()
    exc = raised(lambda: (tmp_path / "report.md").write_text("x"))
    assert os_error_message(exc) == f"cannot use {tmp_path / 'report.md'}: it is a folder, not a file"


def test_full_device_without_a_file_name():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")

    def write_full():
        with open("/dev/full", "wb") as f:
            f.write(b"x")

    exc = raised(write_full)
    assert exc.errno == errno.ENOSPC
    assert os_error_message(exc) == "file system error: no space left on device"  # write() names no file


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.EACCES, "cannot access /x/results.jsonl: permission denied"),
        (errno.EPERM, "cannot access /x/results.jsonl: operation not permitted"),
        (errno.EROFS, "cannot write /x/results.jsonl: read-only file system"),
        (errno.ENOSPC, "cannot write /x/results.jsonl: no space left on device"),
        (errno.EDQUOT, "cannot write /x/results.jsonl: disk quota exceeded"),
        (errno.EIO, "cannot access /x/results.jsonl: input/output error"),
    ],
)
def test_errno_messages(code, expected):
    exc = OSError(code, os.strerror(code), "/x/results.jsonl")
    assert os_error_message(exc) == expected


def test_a_rename_names_its_destination():
    exc = OSError(errno.EROFS, "Read-only file system", "/x/.results.jsonl.ab12.tmp", None, "/x/results.jsonl")
    assert os_error_message(exc) == "cannot write /x/results.jsonl: read-only file system"


def test_atomic_writers_name_the_target_for_permission_errors(tmp_path, monkeypatch):
    """As root a 0500 folder is still writable, so the error is injected where the temp file is created."""

    def denied(path, flags, mode=0o777):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("synthgap.io.os.open", denied)
    exc = raised(lambda: atomic_write_json(tmp_path / "spec.json", {}))
    assert os_error_message(exc) == f"cannot access {tmp_path / 'spec.json'}: permission denied"


def test_a_failed_train_leaves_no_empty_out_folder_and_a_missing_generated_folder_is_named(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.delenv("SYNTHGAP_DATA_ROOT", raising=False)
    out = tmp_path / "new-out"
    code, _, err = synthgap(capsys, "train", "--train-data", "cifake:real", "--out", out, "--epochs", "1")
    assert code == 2 and "no data root" in only_line(err)
    assert not out.exists()  # not an empty folder holding .lock
    code, _, err = synthgap(capsys, "data", "stats", f"generated:{tmp_path / 'no-such'}")
    assert code == 2 and only_line(err).startswith(f"synthgap: error: no such folder: {tmp_path / 'no-such'}")


def test_the_api_words_spec_errors_as_the_command_line_does():
    from synthgap import api
    from synthgap.errors import SynthgapError

    sides = "experiments.0.baseline.sides.0: unknown value 'reall' (did you mean 'real'?); choose from: real, synthetic"
    for spec, expected in [
        (
            {"recipe": {"lrr": 0.1}, "experiments": [{"kind": "baseline"}]},
            "spec: recipe.lrr: unknown key (did you mean 'lr'?)",
        ),
        ({"experiments": [{"kind": "baseline", "sides": ["reall"]}]}, f"spec: {sides}"),
    ]:
        with pytest.raises(SynthgapError) as caught:
            api.experiment_spec(spec)
        assert str(caught.value) == expected
