"""File-system failures become one line naming the path and the cause (`os_error_message`).

Real situations where a test can make them (a file where a folder is expected, a missing file, a folder where a
file is expected); errno-built errors where it cannot (tests run as root, so permission bits do not stop them, and
there is no read-only or full file system to write to).
"""

import errno
import os
from pathlib import Path

import pytest

from synthgap.errors import os_error_message
from synthgap.io import append_jsonl, atomic_write_json


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
