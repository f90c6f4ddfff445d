"""A sampling generator's command is declared in its module with `sampling_command`: the shared options and the
command's own, in one help page, parsed into `SamplingOptions` plus keywords."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from synthgap.commands import generate as generate_commands
from synthgap.generate import command as command_module
from synthgap.generate.command import SAMPLING_COMMANDS, SamplingOptions, sampling_command


def test_every_listed_generator_is_a_generate_command():
    registered = [command.name for command in generate_commands.generate_app.registered_commands]
    assert registered[: len(generate_commands.GENERATORS)] == list(generate_commands.GENERATORS)
    assert set(generate_commands.GENERATORS) <= set(SAMPLING_COMMANDS.names())


def test_a_declared_command_takes_the_shared_options_its_own_and_its_defaults(monkeypatch, tmp_path):
    monkeypatch.setattr(SAMPLING_COMMANDS, "_items", dict(SAMPLING_COMMANDS._items))  # undone after the test
    monkeypatch.setattr(command_module, "SAMPLING_HELP_ORDER", (*command_module.SAMPLING_HELP_ORDER, "flavour"))
    calls = []

    @sampling_command("test_only", short_help="A test's generator.", size=64, model="tiny/model")
    def run(options: SamplingOptions, *, flavour: Annotated[str, typer.Option(help="A flavour.")] = "plain") -> None:
        calls.append((options, flavour))

    app = typer.Typer()
    app.command("test_only")(SAMPLING_COMMANDS.get("test_only").parsed)
    app.command("other")(lambda: None)  # two commands: typer keeps the command's name on the command line
    runner = CliRunner()
    shown = runner.invoke(app, ["test_only", "--help"])
    assert shown.exit_code == 0 and "--flavour" in shown.output and "--guidance" in shown.output
    assert shown.output.index("--size") < shown.output.index("--backend") < shown.output.index("--flavour")  # its place
    done = runner.invoke(app, ["test_only", "--out", str(tmp_path), "--flavour", "salty", "--model", ""])
    assert done.exit_code == 0, done.output
    ((options, flavour),) = calls
    assert flavour == "salty" and options.out == Path(tmp_path)
    assert options.size == 64 and options.model == "tiny/model" and options.steps == 50  # ''  is the default model
    with pytest.raises(ValueError, match="already registered"):
        sampling_command("test_only", short_help="again")(run)
    with pytest.raises(TypeError, match="not options of SamplingOptions: colour"):
        sampling_command("test_only_2", short_help="x", colour="red")
