"""What `fit` writes to a log (stderr that is not a terminal): a start line, one line per epoch, an end line."""

from __future__ import annotations

import re

from synthgap.progress import ENV
from synthgap.train.loop import fit
from tests.train.test_fit import RECIPE, colour_classes, loaders, tiny_model


def test_a_logged_fit_writes_a_start_line_a_line_per_epoch_and_an_end_line(capsys, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    train, test = loaders(colour_classes())
    fit(tiny_model(), train, test, RECIPE.model_copy(update={"epochs": 4, "eval_every": 2}), desc="baseline-real-s0")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 6, lines
    assert lines[0] == "baseline-real-s0: 0/16 step"
    assert re.fullmatch(r"baseline-real-s0: epoch 1/4 train_loss \d+\.\d{3} \(\d+ s\)", lines[1])
    assert re.fullmatch(r"baseline-real-s0: epoch 2/4 train_loss \d+\.\d{3} top1 \d+\.\d \(\d+ s\)", lines[2])
    assert [line.split(" train_loss")[0] for line in lines[3:5]] == [
        "baseline-real-s0: epoch 3/4",
        "baseline-real-s0: epoch 4/4",
    ]
    assert re.fullmatch(r"baseline-real-s0: done 16/16 step in \d+ s", lines[5])


def test_quiet_fit_writes_nothing(capsys, monkeypatch):
    monkeypatch.setenv(ENV, "lines")
    train, test = loaders(colour_classes())
    fit(tiny_model(), train, test, RECIPE.model_copy(update={"epochs": 1}), progress=False)
    assert capsys.readouterr().err == ""
