"""End-to-end proof of the reliability fixes: each test reproduces one finding of the reliability review through
`synthgap train` / `synthgap run` (in this process via `cli.main`, or in real processes where two must race) and
fails on the behaviour before the fix (noted in each docstring).

Everything trains width-0.125 ResNet-18s for one epoch on the 3-images-per-class CIFAKE tree of `cifake_root`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from synthgap.errors import DivergenceError
from synthgap.experiments import students as students_module
from synthgap.experiments.results import read_results
from synthgap.train.checkpoint import CHECKSUM_KEY, METADATA, WEIGHTS
from tests.test_bad_inputs import SPEC, synthgap

# the bad-input corpus's tiny spec, training only the real baseline
TINY = {**SPEC, "name": "reliability", "experiments": [{"kind": "baseline", "sides": ["real"]}]}
TRANSFER = [
    {"kind": "baseline", "sides": ["synthetic"]},
    {"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": [2]},
]
CLI = "import sys; from synthgap.cli import main; sys.argv = ['synthgap'] + sys.argv[1:]; main()"


@pytest.fixture
def models(tmp_path, monkeypatch) -> Path:
    """Private decoded-image cache (environment) and model cache (returned) for one test."""
    monkeypatch.setenv("SYNTHGAP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "models"


def write_spec(folder: Path, data_root: Path, name: str = "spec.yaml", **changes) -> Path:
    spec = {**TINY, **changes, "data": {**TINY["data"], "data_root": str(data_root)}}
    spec["recipe"] = {**TINY["recipe"], **changes.get("recipe", {})}
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def run_args(spec: Path, out: Path, models: Path, *extra: str) -> list[str]:
    return ["run", str(spec), "--out", str(out), "--model-cache", str(models), "-q", *extra]


def train_args(data_root: Path, out: Path, options: str) -> list[str]:
    """`synthgap train` on the real side of `data_root` with the tiny settings plus `options` ("--lr 1e6")."""
    tiny = f"--per-class 3 --epochs 1 --width 0.125 {options} -q".split()
    return ["train", "--train-data", "cifake:real", "--data-root", str(data_root), "--out", str(out), *tiny]


def subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "SYNTHGAP_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", **extra}


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synthgap: error: "), err
    return lines[0]


def complete_checkpoints(models: Path) -> list[Path]:
    return sorted(path.parent for path in models.rglob(METADATA))


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


# --- 1. divergence -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_diverging_train_exits_2_naming_run_epoch_step_and_lr_and_records_nothing(cifake_root, tmp_path):
    """Before: `fit` returned a NaN model, and the run was recorded with a chance-level top-1."""
    out = tmp_path / "out"
    args = train_args(cifake_root, out, "--batch-size 4 --lr 1e6")
    env = subprocess_env(tmp_path)
    result = subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = one_error_line(result.stderr)
    # a loss or (checked at the epoch's end) a weight or BatchNorm statistic that is not finite
    assert line.startswith("synthgap: error: baseline-real-s0 diverged: ")
    assert " at epoch 1, step " in line and "(lr 1e+06); nothing was recorded" in line
    assert read_results(out) == []
    assert not (out / "baseline-real-s0" / "checkpoint").exists()


def test_a_diverging_run_records_nothing_and_caches_no_model(cifake_root, tmp_path, models, capsys):
    """Before: the NaN model went into the model cache (reused by every later spec) and its record was written."""
    spec = write_spec(tmp_path, cifake_root, recipe={"lr": 1e6})
    out = tmp_path / "out"
    code, _, err = synthgap(capsys, *run_args(spec, out, models))
    assert code == 2
    assert "baseline-real-s0 diverged: " in one_error_line(err) and " at epoch 1, step " in one_error_line(err)
    assert read_results(out) == []
    assert not (out / "runs" / "baseline-real-s0" / "record.json").exists()
    assert complete_checkpoints(models) == [] and not list(models.rglob(WEIGHTS))


def test_keep_going_runs_what_does_not_need_the_diverged_run(cifake_root, tmp_path, models, capsys, monkeypatch):
    """One baseline diverges (injected); the other baseline and its transfer still run, the transfer that needs
    the diverged baseline is skipped, and the command exits 2 naming both. Before: no --keep-going; the first
    failure stopped the whole spec."""
    fit = students_module.fit

    def diverge_real_baseline(*args, desc: str, **kwargs):
        if desc == "baseline-real-s0":
            raise DivergenceError(desc, "loss is nan", epoch=1, step=2, lr=0.1)
        return fit(*args, desc=desc, **kwargs)

    monkeypatch.setattr(students_module, "fit", diverge_real_baseline)
    both_ways = [{"kind": "baseline"}, {"kind": "layer_transfer", "n": [2]}]
    spec = write_spec(tmp_path, cifake_root, experiments=both_ways)
    out = tmp_path / "out"
    code, _, err = synthgap(capsys, *run_args(spec, out, models, "--keep-going"))
    assert code == 2
    line = one_error_line(err)
    assert "2 run(s) failed and were not recorded: baseline-real-s0 diverged: loss is nan at epoch 1, step 2" in line
    assert "transfer-real_to_synthetic-n02-s0: skipped, it needs baseline-real-s0" in line
    recorded = [r.run for r in read_results(out)]
    assert recorded == ["baseline-synthetic-s0", "transfer-synthetic_to_real-n02-s0"]
    assert len(complete_checkpoints(models)) == 1  # the synthetic baseline only


# --- 2. integrity of the model cache and the decoded-image cache ----------------------------------------------


def overwrite_middle(path: Path, size: int = 8192) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + size] = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def drop_record(out: Path, run: str) -> None:
    """Forget a finished run: its results line and its run folder (which holds its committed record)."""
    lines = [line for line in (out / "results.jsonl").read_text().splitlines() if json.loads(line)["run"] != run]
    (out / "results.jsonl").write_text("".join(line + "\n" for line in lines))
    for path in sorted((out / "runs" / run).rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()


@pytest.mark.slow
def test_overwritten_cached_weights_are_reported_and_retrained_identically(
    cifake_root, tmp_path, models, capsys, caplog
):
    """8 KB of the cached source model overwritten; the transfer that needs it runs again. Before: the damaged
    weights were loaded (or, once checksummed, the load raised) instead of the model being trained again."""
    spec = write_spec(tmp_path, cifake_root, experiments=TRANSFER)
    out = tmp_path / "out"
    assert synthgap(capsys, *run_args(spec, out, models))[0] == 0
    before = {r.run: r for r in read_results(out)}
    (cached,) = complete_checkpoints(models)
    checksum = json.loads((cached / METADATA).read_text())[CHECKSUM_KEY]
    overwrite_middle(cached / WEIGHTS)
    drop_record(out, "transfer-synthetic_to_real-n02-s0")

    with caplog.at_level("WARNING", logger="synthgap"):
        code, _, err = synthgap(capsys, *run_args(spec, out, models))
    assert code == 0, err
    assert warnings_of(caplog) == [
        f"synthgap: warning: checkpoint {cached} is not used: {WEIGHTS} is corrupt (checksum mismatch)"
    ]
    assert json.loads((cached / METADATA).read_text())[CHECKSUM_KEY] == checksum  # the same weights, bit for bit
    after = {r.run: r for r in read_results(out)}
    assert after["transfer-synthetic_to_real-n02-s0"].top1 == before["transfer-synthetic_to_real-n02-s0"].top1


@pytest.mark.slow
def test_an_invalid_model_json_is_reported_and_the_model_retrained_identically(
    cifake_root, tmp_path, models, capsys, caplog
):
    """A second spec (another --out) needs the damaged cached model: the baseline is trained again, with the
    original baseline's top-1. Before: json.loads raised a traceback (or the unverified weights were used)."""
    spec = write_spec(tmp_path, cifake_root, experiments=TRANSFER)
    assert synthgap(capsys, *run_args(spec, tmp_path / "first", models))[0] == 0
    original = {r.run: r for r in read_results(tmp_path / "first")}
    (cached,) = complete_checkpoints(models)
    (cached / METADATA).write_text('{"weights_checksum": {"sha256": ')

    with caplog.at_level("WARNING", logger="synthgap"):
        code, _, err = synthgap(capsys, *run_args(spec, tmp_path / "second", models))
    assert code == 0, err
    assert warnings_of(caplog) == [
        f"synthgap: warning: checkpoint {cached} is not used: {METADATA} cannot be read (JSONDecodeError)"
    ]
    again = {r.run: r for r in read_results(tmp_path / "second")}
    assert again["baseline-synthetic-s0"].reused_model is False  # trained again, not loaded
    assert again["baseline-synthetic-s0"].top1 == original["baseline-synthetic-s0"].top1
    assert again["transfer-synthetic_to_real-n02-s0"].top1 == original["transfer-synthetic_to_real-n02-s0"].top1


def test_truncated_and_empty_image_caches_are_rebuilt_through_synthgap_run(
    cifake_root, tmp_path, models, capsys, caplog
):
    """Both decoded-image cache files of a spec damaged (one truncated, one emptied); a second --out reuses the
    cached model and must decode the images again, warning once per file. Before: reading a damaged cache file
    raised a safetensors error (a traceback)."""
    spec = write_spec(tmp_path, cifake_root)
    assert synthgap(capsys, *run_args(spec, tmp_path / "first", models))[0] == 0
    (original,) = read_results(tmp_path / "first")
    first, second = sorted((tmp_path / "cache").glob("*.safetensors"))
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    second.write_bytes(b"")

    with caplog.at_level("WARNING", logger="synthgap"):
        code, _, err = synthgap(capsys, *run_args(spec, tmp_path / "second", models))
    assert code == 0, err
    assert sorted(warnings_of(caplog)) == [
        f"synthgap: warning: cache file {first} is corrupt (size mismatch: {first.stat().st_size // 2} bytes, "
        f"expected {first.stat().st_size}); rebuilding",
        f"synthgap: warning: cache file {second} is corrupt (size mismatch: 0 bytes, expected "
        f"{second.stat().st_size}); rebuilding",
    ]
    (again,) = read_results(tmp_path / "second")
    assert again.reused_model is True and again.top1 == original.top1  # same images, same score


# --- 3. locks --------------------------------------------------------------------------------------------------

# The first `synthgap train` holds the folder lock and waits, inside its run, until the test lets it train.
HOLD_TRAINING = """
import os, sys, time
from pathlib import Path
from synthgap.experiments import single
train = single._train
def held(*args, **kwargs):
    release = Path(os.environ["RELEASE"])
    while not release.exists():
        time.sleep(0.05)
    return train(*args, **kwargs)
single._train = held
"""


@pytest.mark.slow
def test_a_second_train_on_the_same_out_stops_with_one_line_while_the_first_records_once(cifake_root, tmp_path):
    """Two `synthgap train` on one --out at once: the second stops (exit 2, one line naming the folder) and the
    first records the run once. Before: both trained into one run folder and both appended a record (or one
    rewrite of results.jsonl lost the other's)."""
    out = tmp_path / "out"
    args = train_args(cifake_root, out, "--batch-size 8")
    release = tmp_path / "release"
    env = subprocess_env(tmp_path, RELEASE=str(release))
    first = subprocess.Popen([sys.executable, "-c", HOLD_TRAINING + CLI, *args], env=env, stderr=subprocess.PIPE)
    run_file = out / "baseline-real-s0" / "run.json"  # written under the lock, just before training
    deadline = time.monotonic() + 300
    while not run_file.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        second = subprocess.run([sys.executable, "-c", CLI, *args], env=env, capture_output=True, text=True)
    finally:
        release.touch()
        first_err = first.communicate(timeout=300)[1].decode()
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert one_error_line(second.stderr) == (
        f"synthgap: error: another synthgap process is running in {out}; wait for it to finish or use another --out"
    )
    (record,) = read_results(out)
    assert record.run == "baseline-real-s0" and math.isfinite(record.top1)
    assert len(list((out / "baseline-real-s0" / "tensorboard").iterdir())) == 1  # one event file: trained once


# Each `synthgap run` announces that it asks for a model-cache key lock, and trains only once both have asked,
# so the two processes are sure to contend for the same key.
ANNOUNCE_AND_GATE = """
import contextlib, os, time
from pathlib import Path
from synthgap.experiments import store, students
markers = Path(os.environ["MARKERS"])
lock = store.ModelCache.lock
@contextlib.contextmanager
def announced(self, key):
    (markers / str(os.getpid())).touch()
    with lock(self, key):
        yield
store.ModelCache.lock = announced
train = students.train_from_scratch
def gated(*args, **kwargs):
    deadline = time.monotonic() + 120
    while len(list(markers.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the other process is now blocked on the lock (or, without one, about to train too)
    return train(*args, **kwargs)
students.train_from_scratch = gated
"""


@pytest.mark.slow
def test_two_runs_sharing_a_model_cache_train_the_model_once(cifake_root, tmp_path, models):
    """Two `synthgap run` (other --out, same --model-cache) need the same baseline: one trains it, the other
    waits for the key lock and reuses it. Before: both trained it and wrote the same cache entry at once."""
    spec = write_spec(tmp_path, cifake_root)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = subprocess_env(tmp_path, MARKERS=str(markers))
    command = [sys.executable, "-c", ANNOUNCE_AND_GATE + CLI]
    processes = [
        subprocess.Popen([*command, *run_args(spec, tmp_path / name, models)], env=env, stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    errors = [p.communicate(timeout=300)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors
    records = [read_results(tmp_path / name)[0] for name in ("a", "b")]
    assert sorted(r.reused_model for r in records) == [False, True]
    assert records[0].top1 == records[1].top1 and records[0].model_key == records[1].model_key
    assert len(complete_checkpoints(models)) == 1


# --- 5. file-system errors end to end --------------------------------------------------------------------------


def test_out_naming_a_file_is_one_line(cifake_root, tmp_path, models, capsys):
    spec = write_spec(tmp_path, cifake_root)
    out = tmp_path / "out"
    out.write_text("I am a file")
    code, _, err = synthgap(capsys, *run_args(spec, out, models))
    assert code == 2
    assert one_error_line(err) == f"synthgap: error: cannot use {out}: it is a file, not a folder"


def fail_results_write(monkeypatch, code: int) -> None:
    """The file system refuses results.jsonl: EROFS where its temp file is created (a read-only folder), ENOSPC
    half-way through writing it (a full disk). Tests run as root, so permission bits would not stop them."""
    import synthgap.io as io_module

    def is_results_temp(path) -> bool:
        return Path(path).name.startswith(".results.jsonl.")

    if code == errno.EROFS:
        real_open = os.open

        def read_only(path, flags, mode=0o777, **kwargs):
            if is_results_temp(path) and flags & os.O_CREAT:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real_open(path, flags, mode, **kwargs)

        monkeypatch.setattr(io_module.os, "open", read_only)
    else:
        real_write = Path.write_bytes

        def disk_full(self, data):
            if not is_results_temp(self):
                return real_write(self, data)
            real_write(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

        monkeypatch.setattr(Path, "write_bytes", disk_full)


@pytest.mark.parametrize(
    ("code", "cause"), [(errno.EROFS, "read-only file system"), (errno.ENOSPC, "no space left on device")]
)
def test_a_refused_results_write_is_one_line_and_leaves_nothing_that_looks_complete(
    cifake_root, tmp_path, models, capsys, monkeypatch, code, cause
):
    """Before: a traceback, and a .tmp file (0600) left beside results.jsonl."""
    spec = write_spec(tmp_path, cifake_root)
    out = tmp_path / "out"
    with monkeypatch.context() as patched:
        fail_results_write(patched, code)
        exit_code, _, err = synthgap(capsys, *run_args(spec, out, models))
    assert exit_code == 2
    assert one_error_line(err) == f"synthgap: error: cannot write {out / 'results.jsonl'}: {cause}"
    assert not (out / "results.jsonl").exists() and not list(out.rglob("*.tmp"))

    # the disk is usable again: the same command records the run once (from its committed record, untrained)
    monkeypatch.setattr(students_module, "train_from_scratch", lambda *a, **k: pytest.fail("trained again"))
    assert synthgap(capsys, *run_args(spec, out, models))[0] == 0
    assert [r.run for r in read_results(out)] == ["baseline-real-s0"]


@pytest.mark.parametrize("full", ["cache", "models"])
def test_a_full_disk_while_caching_leaves_nothing_that_looks_complete(
    cifake_root, tmp_path, models, capsys, monkeypatch, full
):
    """ENOSPC while decoded images (`cache`, written chunk by chunk) or the trained model (`models`, inside
    safetensors, which reports it as its own exception type) are cached: one line naming the file, and no checksum
    file / model.json, so no later run takes the half-written file for a complete one."""
    import safetensors.torch
    from safetensors import SafetensorError

    from synthgap.data import cache as cache_module

    real_save = safetensors.torch.save_file
    folder = tmp_path / full

    def disk_full(tensors, filename, metadata=None):
        if folder not in Path(filename).parents:
            return real_save(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(b"\0" * 100)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    def rows_fill_the_disk(f, images):
        f.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    if full == "cache":
        monkeypatch.setattr(cache_module, "write_rows", rows_fill_the_disk)
    spec = write_spec(tmp_path, cifake_root)
    code, _, err = synthgap(capsys, *run_args(spec, tmp_path / "out", models))
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"synthgap: error: cannot write {folder}/") and line.endswith(
        ".safetensors: no space left on device"
    )
    left = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json", ".tmp")]
    # the images' identities found before the disk filled are whole files that say only what they say
    memos = [p for p in left if p.parent.name == cache_module.KEYS]
    assert all(cache_module.KEY_PATTERN.fullmatch(json.loads(p.read_text())["key"]) for p in memos)
    assert not [p for p in left if p not in memos]
    assert read_results(tmp_path / "out") == []


# --- 6. file modes ---------------------------------------------------------------------------------------------


def test_run_outputs_get_the_umask_permissions(cifake_root, tmp_path, models, capsys):
    """Before: results.jsonl, spec.yaml and cached models came out 0600 (tempfile.mkstemp's mode)."""
    spec = write_spec(tmp_path, cifake_root)
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        assert synthgap(capsys, *run_args(spec, out, models))[0] == 0
    finally:
        os.umask(old)
    assert oct((out / "results.jsonl").stat().st_mode & 0o777) == oct(0o644)
    assert oct((out / "spec.yaml").stat().st_mode & 0o777) == oct(0o644)
    written = [p for p in (*out.rglob("*"), *models.rglob("*")) if p.is_file()]
    assert {p.name for p in written} >= {"record.json", "run.json", WEIGHTS, METADATA}
    assert {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in written} == {
        p.relative_to(tmp_path).as_posix(): oct(0o644) for p in written
    }
