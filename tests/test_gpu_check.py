"""benchmarks/gpu_check.py: its CPU path (one line, exit 0) and its pure helpers (table, fake ImageFolder, a failing
check as a FAIL row). The GPU checks themselves need a CUDA device and run only through `make gpu-check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.gpu_check import (
    FAIL,
    INFO,
    NO_CUDA,
    PASS,
    Row,
    any_failed,
    error_line,
    format_table,
    format_value,
    run_check,
    write_image_folder,
)
from PIL import Image

from synthgap.data.sources import open_source

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_without_cuda_it_prints_one_line_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == NO_CUDA + "\n"


def test_a_gpu_that_torch_cannot_use_is_a_failure_not_no_gpu(tmp_path, monkeypatch):
    from benchmarks import gpu_check

    sign = tmp_path / "nvidia0"
    sign.touch()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(gpu_check, "NVIDIA_SIGNS", (str(sign),))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    problem = gpu_check.cuda_problem()
    assert problem.startswith(f"an NVIDIA GPU is here ({sign}") and "cannot use it" in problem
    assert gpu_check.main() == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_check.cuda_problem() is None and gpu_check.main() == 0  # hidden on purpose: nothing to check
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(gpu_check, "NVIDIA_SIGNS", (str(tmp_path / "absent"),))
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert gpu_check.cuda_problem() is None and gpu_check.main() == 0


@pytest.mark.slow
def test_the_offline_kit_script_refuses_a_missing_kit_and_one_for_another_python(tmp_path):
    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu-check"
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    copied = repo / "scripts" / "gpu-check"
    copied.write_text(script.read_text())
    copied.chmod(0o755)
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run([str(copied)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("synthgap: error: no .gpu-kit/ here: run 'make gpu-kit'")
    (repo / ".gpu-kit").mkdir()
    (repo / ".gpu-kit" / "python-version").write_text("2.7\n")
    done = subprocess.run([str(copied)], capture_output=True, text=True, env=env, timeout=120)
    have = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"synthgap: error: the kit in .gpu-kit/ was built for Python 2.7 and {sys.executable} is Python {have}: "
        f"run 'make gpu-kit GPU_KIT_PYTHON={have}'"
    ]


def test_the_table_is_markdown_with_one_row_per_row_and_escaped_pipes():
    rows = [
        Row("fit", 9700.4, "img/s", "reference"),
        Row("ratio", 0.934, "ratio", ">= 0.90", PASS),
        Row("broken", "RuntimeError: a | b", status=FAIL),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0] == "| check | value | unit | target or reference | result |"
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2:] == [
        "| fit | 9,700 | img/s | reference | info |",
        "| ratio | 0.93 | ratio | >= 0.90 | PASS |",
        "| broken | RuntimeError: a \\| b |  |  | FAIL |",
    ]


def test_values_keep_their_significant_digits():
    assert (format_value(12.345), format_value(0.00123), format_value(25600), format_value("4/4")) == (
        "12.35",
        "0.00123",
        "25,600",
        "4/4",
    )


def test_a_check_that_raises_is_one_fail_row_with_its_first_error_line(capsys):
    def broken() -> list[Row]:
        raise ValueError("no room on the GPU\nsecond line")

    rows = run_check("data path", broken)
    assert rows == [Row("data path", "ValueError: no room on the GPU", status=FAIL)]
    assert "Traceback" in capsys.readouterr().err  # the whole traceback goes to stderr for the diagnosis
    assert any_failed(rows)
    assert not any_failed([Row("x", 1.0, status=INFO), Row("y", 2.0, status=PASS)])
    assert run_check("fine", lambda: [Row("fine", 1.0)]) == [Row("fine", 1.0)]


def test_long_errors_are_cut_to_one_short_line():
    line = error_line(RuntimeError("x" * 500))
    assert len(line) == 200 and line.endswith("...")
    assert error_line(KeyError()) == "KeyError"


def test_the_fake_image_folder_opens_as_a_folder_source_with_its_classes(tmp_path):
    root = write_image_folder(tmp_path / "fake", classes=3, per_class=2, size=16, seed=4)
    index = open_source(f"folder:{root}", "train")
    assert len(index.classes) == 3 and len(index.paths) == 6
    assert sorted(index.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    with Image.open(index.paths[0]) as image:
        assert image.size == (16, 16) and image.mode == "RGB"
    again = write_image_folder(tmp_path / "again", classes=3, per_class=2, size=16, seed=4)
    assert (again / "class_01" / "img_00001.png").read_bytes() == (root / "class_01" / "img_00001.png").read_bytes()
