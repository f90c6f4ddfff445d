"""Resume after a real SIGKILL of the command line mid-run: 0 images lost or duplicated, identical files.

`kill_mid_run` is shared with test_kill_real_guided.py (img2img and adapt)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from synthgap.generate.output import MANIFEST, PARTS
from synthgap.generate.text2img import generate_text2img
from tests.generate.tiny_pipelines import TINY_SETTINGS, png_files, tiny_config

KILL_AFTER = 6  # images on disk before the kill (of 30)
CLI = "import sys; from synthgap.cli import main; sys.argv = ['synthgap'] + sys.argv[1:]; main()"


def cli_args(model, out) -> list[str]:
    s = TINY_SETTINGS
    return [
        "generate",
        "text2img",
        "--model",
        str(model),
        "--out",
        str(out),
        "--classes",
        s["classes"],
        "--per-class",
        str(s["per_class"]),
        "--size",
        str(s["size"]),
        "--steps",
        str(s["steps"]),
        "--batch-size",
        str(s["batch_size"]),
        "--seed",
        str(s["seed"]),
        "--quiet",
    ]


def png_count(root: Path) -> int:
    """Class-folder PNGs under `root` (renamed into place, so done), without reading them."""
    return sum(1 for p in root.glob("*/*.png") if p.parent.name != "previews")


def kill_mid_run(
    args: list[str],
    out: Path,
    progressed: Callable[[], bool],
    finished: Callable[[], bool],
    *,
    code: str = CLI,
    attempts: int = 3,
    timeout: float = 120,
) -> int:
    """Run `synthgap *args` in a subprocess and SIGKILL it as soon as `progressed()` sees its progress on disk (or let
    `code` kill itself); returns the attempt whose kill hit mid-run (`finished()` still false).

    A kill that came too late (the run finished first, or was done but for its exit) does not count: `out` is removed
    and the command started again, up to `attempts` times. A run that fails on its own fails the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}  # one thread, as in the test process
    late = []
    for attempt in range(1, attempts + 1):
        with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a chatty run can never block on it
            process = subprocess.Popen(
                [sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )
            deadline = time.monotonic() + timeout
            try:
                while process.poll() is None and not progressed():
                    assert time.monotonic() < deadline, f"no progress on disk in {timeout:.0f} s"
                    time.sleep(0.005)
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait()
            stderr.seek(0)
            errors = stderr.read().decode(errors="replace")
        assert process.returncode in (0, -signal.SIGKILL), f"the run failed ({process.returncode}): {errors}"
        if process.returncode == -signal.SIGKILL and not finished():
            return attempt
        late.append("ended before the kill" if process.returncode == 0 else "killed after the end")
        shutil.rmtree(out, ignore_errors=True)
    raise AssertionError(f"no kill hit mid-run in {attempts} attempts: {late}")


def test_sigkill_mid_run_then_rerun_completes_the_exact_set(reference_set, tiny_text2img, tmp_path):
    out = tmp_path / "gen"
    kill_mid_run(cli_args(tiny_text2img, out), out, lambda: png_count(out) >= KILL_AFTER, lambda: png_count(out) == 30)
    partial = png_files(out)
    assert KILL_AFTER <= len(partial) < 30 and not (out / MANIFEST).exists()

    result = generate_text2img(tiny_config(tiny_text2img, out), progress=False)
    assert result.written == 30 - len(partial)
    assert png_files(out) == png_files(reference_set)  # byte-identical: nothing lost, nothing extra
    lines = (out / MANIFEST).read_text().splitlines()
    assert lines == (reference_set / MANIFEST).read_text().splitlines()
    assert len({json.loads(line)["file"] for line in lines}) == 30
    part_files = [json.loads(line)["file"] for line in (out / PARTS / "0-of-1.jsonl").read_text().splitlines()]
    assert sorted(part_files) == sorted(set(part_files))  # no duplicated manifest line either
    assert not list(out.glob("*/.*.tmp"))  # temp files of the cut write are cleaned up
