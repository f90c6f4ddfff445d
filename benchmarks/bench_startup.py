"""Start-up of the `synthgap` command: how long until the first thing a user sees, against a bare `import torch`.

Each command runs in a fresh process (the console script next to this interpreter), interleaved with the reference
(reference, command, reference, command, ...), best of `REPEATS` each, wall time:

- startup_torch_import_s: `python -c "import torch"`, the reference.
- startup_spec_error_s: `synthgap run SPEC --dry-run` where SPEC has a typo (`recipe.lrr`): the error line.
  Target: startup_spec_error_vs_torch ≤ 1.5.
- startup_help_s: `synthgap --help`. Target: < 1 s.
- startup_data_describe_s: `synthgap data describe DIR` of a small ImageFolder (2 classes × 4 PNGs).
- startup_spec_bound_error_s: `synthgap run SPEC --dry-run --set recipe.epochs=-3`: a value outside its field's
  bounds, checked with the keys before torch is imported. Target: startup_spec_bound_error_vs_torch ≤ 1.5.
- startup_spec_value_error_s: `synthgap run SPEC --dry-run --n 25` on a valid spec: an error only the full
  validation finds (it needs the model family, so the spec's classes, torch and timm are imported). No target.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_startup.py [REPEATS]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report  # noqa: E402

REPEATS = 5
TYPO_SPEC = "name: typo\nrecipe: {epochs: 1, lrr: 0.1}\nexperiments:\n  - kind: baseline\n"
VALID_SPEC = "name: ok\nexperiments:\n  - kind: baseline\n  - kind: layer_transfer\n    n: [2]\n"


def synthgap_command() -> list[str]:
    """The console script of this environment, or the same entry point through this interpreter."""
    script = Path(sys.executable).with_name("synthgap")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from synthgap.cli import main; sys.argv[0] = 'synthgap'; main()"]


def write_inputs(folder: Path) -> dict[str, Path]:
    from PIL import Image

    (folder / "typo.yaml").write_text(TYPO_SPEC)
    (folder / "valid.yaml").write_text(VALID_SPEC)
    images = folder / "images"
    for label, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        (images / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (32, 32), colour).save(images / label / f"{i}.png")
    return {"typo": folder / "typo.yaml", "valid": folder / "valid.yaml", "images": images}


def timed(command: list[str], expect_code: int, expect: str, cwd: Path) -> float:
    """Wall seconds of one run of `command`, checked to have done what is measured (exit code, output)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=os.environ.copy())
    seconds = time.perf_counter() - start
    output = done.stdout + done.stderr
    if done.returncode != expect_code or expect not in output:
        raise SystemExit(
            f"{' '.join(command)}: exit {done.returncode}, expected {expect_code} and {expect!r}:\n{output}"
        )
    return seconds


def main(repeats: int = REPEATS) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = write_inputs(folder)
        cli = synthgap_command()
        reference = ([sys.executable, "-c", "import torch"], 0, "")
        commands = {
            "spec_error": ([*cli, "run", str(inputs["typo"]), "--dry-run"], 2, "recipe.lrr: unknown key"),
            "help": ([*cli, "--help"], 0, "Usage: synthgap"),
            "data_describe": ([*cli, "data", "describe", str(inputs["images"])], 0, "cat"),
            "spec_bound_error": (
                [*cli, "run", str(inputs["valid"]), "--dry-run", "--set", "recipe.epochs=-3"],
                2,
                "recipe.epochs: must be at least 1",
            ),
            "spec_value_error": ([*cli, "run", str(inputs["valid"]), "--dry-run", "--n", "25"], 2, "--n 25: "),
        }
        best = {name: float("inf") for name in ["torch_import", *commands]}
        for _ in range(repeats):
            for name, command in commands.items():  # A, B, A, B: the reference next to each command
                best["torch_import"] = min(best["torch_import"], timed(*reference, cwd=folder))
                best[name] = min(best[name], timed(*command, cwd=folder))
    for name, seconds in best.items():
        report(f"startup_{name}_s", seconds, "s")
    for name in ("spec_error", "data_describe", "spec_bound_error", "spec_value_error"):
        report(f"startup_{name}_vs_torch", best[name] / best["torch_import"], "x")
    return best


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else REPEATS)
