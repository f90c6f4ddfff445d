"""The command line as a user meets it: exit codes, one-line errors, dry runs of the shipped configs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from synthgap.cli import app
from synthgap.data.imagenet100 import imagenet100_wnids
from tests.data.test_imagenet100 import write_tree
from tests.specs import TINY_MODEL

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
runner = CliRunner()


def synthgap(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    code = "import sys; from synthgap.cli import main; sys.argv = ['synthgap'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "--train-data", "cifake:real", "--data-root", "/nonexistent"],
            "CIFAKE not found under /nonexistent",
        ),
        (["train", "--train-data", "nowhere:x"], "unknown data source 'nowhere'"),
        (["run", "/nonexistent/spec.yaml"], "config file not found"),
        (["data", "describe", "/nonexistent"], "no such folder"),
        (["train", "--epochs", "1"], "synthgap train needs the training data: --train-data cifake:real"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(args, message):
    result = synthgap(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synthgap: error: ")
    assert message in lines[0]


def tiny_train(root, out, data: str, *extra: str) -> list[str]:
    """`synthgap train` of a width-0.125 student for one epoch of batch 8 on `data` under `root`, quietly into `out`."""
    common = ["--data-root", str(root), "--epochs", "1", "--width", "0.125", "--batch-size", "8"]
    return ["train", "--train-data", data, *common, *extra, "--out", str(out), "-q"]


def test_train_writes_a_run_folder_and_one_result_line(cifake_root, tmp_path, monkeypatch):
    args = tiny_train(cifake_root, tmp_path / "out", "cifake:synthetic")
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "baseline-synthetic-s0: top-1" in first.output
    run_dir = tmp_path / "out" / "baseline-synthetic-s0"
    assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "summary.csv", "checkpoint", "tensorboard"}
    runner.invoke(app, args)  # finished: skipped, not duplicated
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["kind"] == "baseline" and record["target"] == "cifake:synthetic" and record["train_images"] == 30


def test_train_test_per_class_caps_the_test_set(cifake_root, tmp_path):
    args = tiny_train(cifake_root, tmp_path / "out", "cifake:real", "--test-per-class", "1")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (line,) = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    confusion = json.loads(line)["confusion"]
    assert len(confusion) == 10 and sum(map(sum, confusion)) == 10  # 1 of the 3 test images of each class


SMALL = ["--per-class", "3", "--set", "data.test_per_class=3"]  # the test trees hold 3 images per class


def test_shipped_cifake_config_dry_runs(cifake_root, tmp_path):
    result = runner.invoke(
        app,
        [
            "run",
            str(CONFIGS / "cifake-layers.yaml"),
            "--dry-run",
            "--data-root",
            str(cifake_root),
            "--out",
            str(tmp_path),
            *SMALL,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "spec 'cifake-layers': valid" in result.output
    assert "runs: 50 (baseline 6, layer_transfer 44)" in result.output


def test_dry_run_rejects_per_class_beyond_the_smallest_class_naming_side_and_classes(cifake_root, tmp_path):
    result = synthgap(
        "run", str(CONFIGS / "cifake-layers.yaml"), "--dry-run", "--data-root", str(cifake_root), "--out", str(tmp_path)
    )  # per_class 1000, 3 images per class
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "per_class=1000, but cifake:real (train) has fewer images in 10 class(es): airplane (3)" in result.stderr


@pytest.mark.parametrize(
    ("config", "runs"),
    [
        ("cifake-reduction.yaml", "runs: 48 (baseline 6, data_reduction 42)"),
        ("cifake-ablations.yaml", "runs: 57 (baseline 6, ablation 51)"),
        (
            "cifake-remedies.yaml",
            "runs: 54 (baseline 6, distillation 12, layer_transfer 6, curation 12, ablation 12, data_reduction 6)",
        ),
        ("cifake-stitching.yaml", "runs: 88 (baseline 7, stitching 81)"),
    ],
)
def test_shipped_cifake_configs_dry_run(cifake_root, tmp_path, config, runs):
    result = runner.invoke(
        app,
        ["run", str(CONFIGS / config), "--dry-run", "--data-root", str(cifake_root), "--out", str(tmp_path), *SMALL],
    )
    assert result.exit_code == 0, result.output
    assert runs in result.output


@pytest.mark.parametrize(
    ("config", "runs"),
    [
        ("imagenet100-layers.yaml", "runs: 40 (baseline 6, layer_transfer 34)"),
        ("imagenet100-reduction.yaml", "runs: 69 (baseline 6, data_reduction 63)"),
    ],
)
def test_shipped_imagenet100_configs_dry_run_on_a_fake_tree(tmp_path, config, runs):
    wnids = list(imagenet100_wnids())
    imagenet = write_tree(tmp_path / "imagenet", {"train": 1, "val": 1}, wnids)
    synthetic = write_tree(tmp_path / "sd", {"train": 1}, wnids) / "train"
    overrides = [
        f"data.real=imagenet100:{imagenet}",
        f"data.test=imagenet100:{imagenet}",
        f"data.synthetic=folder:{synthetic}",
    ]
    args = [
        "run",
        str(CONFIGS / config),
        "--dry-run",
        "--out",
        str(tmp_path),
        "--per-class",
        "1",
        "--set",
        "data.test_per_class=1",
    ]
    result = runner.invoke(app, args + [part for item in overrides for part in ("--set", item)])
    assert result.exit_code == 0, result.output
    assert "data imagenet100:" in result.output and "100 classes" in result.output
    assert runs in result.output


def test_dry_run_names_mismatched_classes(tmp_path):
    wnids = list(imagenet100_wnids())
    imagenet = write_tree(tmp_path / "imagenet", {"train": 1, "val": 1}, wnids)
    other = write_tree(tmp_path / "other", {"train": 1}, wnids[:99] + ["n00000001"]) / "train"
    result = synthgap(
        "run",
        str(CONFIGS / "imagenet100-layers.yaml"),
        "--dry-run",
        "--out",
        str(tmp_path),
        "--set",
        f"data.real=imagenet100:{imagenet}",
        "--set",
        f"data.test=imagenet100:{imagenet}",
        "--set",
        f"data.synthetic=folder:{other}",
    )
    assert result.returncode == 2
    assert "n00000001" in result.stderr and wnids[99] in result.stderr


def test_skip_bad_skips_and_counts_corrupt_images(cifake_root, tmp_path, monkeypatch):
    (cifake_root / "cifake" / "train" / "REAL" / "1 (3).jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    args = tiny_train(cifake_root, tmp_path / "out", "cifake:real")
    strict = runner.invoke(app, args)
    assert strict.exit_code != 0 and "1 (3).jpg" in str(strict.exception)
    lenient = runner.invoke(app, [*args, "--skip-bad"])
    assert lenient.exit_code == 0, lenient.output
    assert "skipped 1 unreadable images" in lenient.output
    record = json.loads((tmp_path / "out" / "results.jsonl").read_text())
    assert record["skipped_images"] == 1 and record["train_images"] == 29


def test_run_takes_skip_bad_and_prints_and_records_the_skipped_images(cifake_root, tmp_path):
    (cifake_root / "cifake" / "train" / "REAL" / "1 (3).jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "model": TINY_MODEL,
                "recipe": {"epochs": 1, "batch_size": 8},
                "experiments": [{"kind": "baseline", "sides": ["real"]}],
            }
        )
    )
    args = ["run", str(spec), "--data-root", str(cifake_root), "--out", str(tmp_path / "out"), "-q"]
    strict = runner.invoke(app, args)
    assert strict.exit_code != 0 and "--skip-bad" in str(strict.exception)  # the hint names an option run has
    lenient = runner.invoke(app, [*args, "--skip-bad"])
    assert lenient.exit_code == 0, lenient.output
    assert "1 runs skipped unreadable images (up to 1 each" in lenient.output
    record = json.loads((tmp_path / "out" / "results.jsonl").read_text())
    assert record["skipped_images"] == 1 and record["train_images"] == 29


def test_version_and_short_help():
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("synthgap ")
    short = runner.invoke(app, ["run", "-h"])
    assert short.exit_code == 0 and "--dry-run" in short.stdout


def test_report_says_where_the_html_and_the_figures_went(tmp_path):
    from synthgap.experiments.results import append_result
    from tests.report.records import make_record

    append_result(tmp_path, make_record(run="r0"))
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0
    assert f"{tmp_path / 'report.md'}, {tmp_path / 'report.html'} and" in result.stdout
    assert (
        f"figures in {tmp_path / 'figures'}; to share one file: {tmp_path / 'report-standalone.html'}" in result.stdout
    )


def test_the_imagenet100_generators_spec_compares_every_kind_of_set():
    import yaml

    from synthgap.experiments.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate(yaml.safe_load((CONFIGS / "imagenet100-generators.yaml").read_text()))
    generator = next(block for block in spec.experiments if block.kind == "generator")
    assert set(generator.sources) == {
        "text2img",
        "img2img",
        "img2img_lora",
        "lora_text2img",
        "curated_confidence",
        "unclip_oracle",
    }
    assert all(ref.startswith("generated:") for ref in generator.sources.values())


# --- help at 80 columns ---------------------------------------------------------------------------------------------


def every_command(group=None, path=()):
    """(command path, click command) of every command and subcommand of `synthgap`, the groups included."""
    import typer

    group = group or typer.main.get_command(app)
    yield path, group
    for name in getattr(group, "commands", {}):
        yield from every_command(group.commands[name], (*path, name))


def help_at_80_columns(path) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def option_help(path, option: str) -> str:
    """What the help of the command at `path` says about `option`, on one line (up to the next option)."""
    text = " ".join(help_at_80_columns(path).split())
    start = text.index(f"{option} ")
    return text[start : text.index(" --", start + len(option))]


@pytest.mark.parametrize("path", [path for path, _ in every_command()], ids=lambda path: " ".join(path) or "synthgap")
def test_help_fits_80_columns_with_every_option_name_whole(path):
    command = dict(every_command())[path]
    text = help_at_80_columns(path)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "…" not in text and "..." not in text.replace("[ARGS]...", ""), text  # nothing cut short
    assert "<bool>" not in text and "list[" not in text, text  # flags are flags; metavars are words
    for param in command.params:
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith("-"):
                assert f"{name} " in text or f"{name}," in text or f"{name}\n" in text, (name, text)
    for name in getattr(command, "commands", {}):
        assert f"  {name}  " in text, (name, text)


def test_help_paragraphs_are_rewrapped_not_cut_at_the_docstring_lines():
    text = help_at_80_columns(["train"])
    assert "The same command again prints the recorded result without training; the same\n  run name" in text


def test_boolean_options_are_flags_in_help():
    assert "  -q, --quiet " in help_at_80_columns(["run"]) and "  --dry-run " in help_at_80_columns(["run"])
    assert "--previews / --no-previews" in help_at_80_columns(["generate", "text2img"])


def test_help_shows_the_defaults_of_options_that_default_to_the_configs():
    from synthgap import cli
    from synthgap.experiments.backends import BACKENDS
    from synthgap.experiments.single import TrainRunConfig
    from synthgap.generate.models import DEFAULT_TEXT2IMG_MODEL, DEFAULT_UNCLIP_MODEL

    config = TrainRunConfig()
    train = " ".join(help_at_80_columns(["train"]).split())
    assert f"augmentation (default {config.seed})." in train
    assert option_help(("train",), "--model").endswith(f" (default {config.model.name}).")
    assert f"(default {config.model.stem})." in train
    assert cli.BACKENDS == BACKENDS
    for command, model in [
        ("text2img", DEFAULT_TEXT2IMG_MODEL),
        ("img2img", DEFAULT_TEXT2IMG_MODEL),
        ("adapt", DEFAULT_TEXT2IMG_MODEL),
        ("unclip", DEFAULT_UNCLIP_MODEL),
    ]:
        assert f"--model <str> {model} (the default)" in " ".join(help_at_80_columns(["generate", command]).split())


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["rnu"], "no such command 'rnu' (did you mean 'run'?); see 'synthgap --help'"),
        (["data", "stat"], "no such command 'stat' (did you mean 'stats'?); see 'synthgap data --help'"),
        (["run"], "missing argument 'SPEC.yaml'; see 'synthgap run --help'"),
        (["curate", "x"], "missing option '--clip-model'; see 'synthgap curate --help'"),
        (
            ["run", "x.yaml", "--dryrun"],
            "no such option: --dryrun (did you mean --dry-run?); see 'synthgap run --help'",
        ),
        (["run", "x.yaml", "--epochs", "x"], "--epochs: expected a whole number, got 'x'; see 'synthgap run --help'"),
        (["train", "--lr", "fast"], "--lr: expected a number, got 'fast'; see 'synthgap train --help'"),
    ],
)
def test_a_command_line_typer_cannot_parse_is_one_error_line_and_exit_2(args, line):
    result = synthgap(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"synthgap: error: {line}\n"


def test_data_describe_takes_a_spec_data_reference(cifake_root, tmp_path, monkeypatch, capsys):
    """`data describe cifake:real` reads the data root from $SYNTHGAP_DATA_ROOT; a generate output is a generated set;
    a dataset with a ClassLabel value past its names is one error line."""
    import datasets

    from tests.data.test_describe import write_generated
    from tests.data.test_hf import _cast_labels
    from tests.test_bad_inputs import only_line
    from tests.test_bad_inputs import synthgap as in_process

    monkeypatch.setenv("SYNTHGAP_DATA_ROOT", str(cifake_root))
    code, out, err = in_process(capsys, "data", "describe", "cifake:real", "--sample", "3")
    assert code == 0, err
    assert "layout: CIFAKE, real side" in out and "cifake:real/test: 30 images, 10 classes" in out
    code, out, err = in_process(capsys, "data", "describe", write_generated(tmp_path / "gen"))
    assert code == 0 and "layout: generated set (synthgap generate text2img" in out, err
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": _cast_labels([0, 1, 2, 3, 7], ["a", "b", "c", "d"])}).save_to_disk(str(saved))
    capsys.readouterr()  # the progress bars of making the dataset
    code, _, err = in_process(capsys, "data", "describe", f"hf:{saved}")
    assert code == 2 and "row 4: label 7 is out of range for column 'label', a ClassLabel of 4 names" in only_line(err)


def test_help_names_every_registered_family_preset_augmentation_and_scheduler(monkeypatch):
    """`train --help` reads its lists from the registries when it is shown, so a family registered at run time (here
    by the test) is listed; the sampling commands name every registered scheduler."""
    from dataclasses import replace

    from synthgap.data.transforms import AUGMENTATIONS, NORMALIZATIONS
    from synthgap.generate.models import SCHEDULERS
    from synthgap.models import FAMILIES, get_family
    from synthgap.train.presets import RECIPE_PRESETS

    monkeypatch.setattr(FAMILIES, "_items", dict(FAMILIES._items))  # no removal in Registry: add to a copy, undone
    FAMILIES.add("test_only_net", replace(get_family("resnet18"), name="test_only_net"))
    assert "test_only_net" in option_help(("train",), "--model")
    lists = {
        ("train",): {
            "--model": FAMILIES.names(),
            "--preset": RECIPE_PRESETS.names(),
            "--augmentation": AUGMENTATIONS.names(),
            "--normalization": list(NORMALIZATIONS),
        },
        **{("generate", command): {"--scheduler": SCHEDULERS.names()} for command in ("text2img", "img2img", "unclip")},
    }
    for path, options in lists.items():
        for option, names in options.items():
            described = option_help(path, option)
            missing = [name for name in names if name not in described]
            assert not missing and "{" not in described, (path, option, missing, described)


def test_the_sampling_commands_take_every_config_field_with_the_configs_defaults():
    """`SamplingOptions` and each command's own options make up the generation config, with the config class's
    defaults; the rest of `SamplingOptions` says where the generation runs."""
    from dataclasses import MISSING, fields

    from synthgap.generate.command import SamplingOptions
    from synthgap.generate.img2img import Img2ImgConfig
    from synthgap.generate.text2img import Text2ImgConfig
    from synthgap.generate.unclip import UnclipConfig

    commands = dict(every_command())
    where_it_runs = {field.name for field in fields(SamplingOptions)} - set(SamplingOptions(out=Path()).config_fields())
    for name, config in [("text2img", Text2ImgConfig), ("img2img", Img2ImgConfig), ("unclip", UnclipConfig)]:
        options = {param.name: param.default for param in commands[("generate", name)].params if param.name != "help"}
        expected = {field.name: None if field.default is MISSING else field.default for field in fields(config)}
        expected.pop("extra", None)  # no option: pipeline keywords for the Python API
        if expected.pop("templates", None):  # --template (repeatable): none given means the config's templates
            expected["template"] = None
        assert set(options) == set(expected) | where_it_runs, name
        assert {option: options[option] for option in expected} == expected, name


def test_demo_help_states_the_demo_defaults():
    """The demo's defaults are written out in its help (so --help imports no torch): they must be the demo's."""
    from synthgap.demo import DEMO_EPOCHS, DEMO_PER_CLASS, DEMO_WIDTH

    text = " ".join(help_at_80_columns(("demo",)).split())
    for default in (f"default {DEMO_PER_CLASS})", f"default {DEMO_EPOCHS})", f"default {DEMO_WIDTH:g}:"):
        assert default in text, (default, text)
