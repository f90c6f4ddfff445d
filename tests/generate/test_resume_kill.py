"""Resume after a real SIGKILL of the command line mid-run: 0 images lost or duplicated, identical files."""

import json
import os
import signal
import subprocess
import sys
import time

from synthgap.generate.output import MANIFEST, PARTS
from synthgap.generate.text2img import generate_text2img
from tests.generate.tiny_pipelines import TINY_SETTINGS, png_files, tiny_config

KILL_AFTER = 6  # images on disk before the kill (of 30)


def cli_args(model, out) -> list[str]:
    s = TINY_SETTINGS
    return ["generate", "text2img", "--model", str(model), "--out", str(out), "--classes", s["classes"],
            "--per-class", str(s["per_class"]), "--size", str(s["size"]), "--steps", str(s["steps"]),
            "--batch-size", str(s["batch_size"]), "--seed", str(s["seed"]), "--quiet"]  # fmt: skip


def test_sigkill_mid_run_then_rerun_completes_the_exact_set(reference_set, tiny_text2img, tmp_path):
    out = tmp_path / "gen"
    code = "import sys; from synthgap.cli import main; sys.argv = ['synthgap'] + sys.argv[1:]; main()"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}  # one thread, as in this test process
    process = subprocess.Popen([sys.executable, "-c", code, *cli_args(tiny_text2img, out)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not out.exists() or len(png_files(out)) < KILL_AFTER:
        assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()!r}"
        assert time.monotonic() < deadline, "no images appeared"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
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
