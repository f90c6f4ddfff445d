import errno
import hashlib
import json
import os

import pytest
import torch

from synthgap import io
from synthgap.io import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    check_folder_path,
    file_digest,
    read_jsonl,
    read_jsonl_numbered,
    save_safetensors,
    verify_file,
)


def test_append_jsonl_keeps_earlier_lines_and_repairs_a_missing_newline(tmp_path):
    path = tmp_path / "results.jsonl"
    append_jsonl(path, {"run": "a"})
    path.write_text(path.read_text().rstrip("\n"))  # as if an older writer left no trailing newline
    append_jsonl(path, {"run": "b"})
    assert [r["run"] for r in read_jsonl(path)] == ["a", "b"]
    assert path.read_text().endswith("\n")


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("synthgap.io.os.replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_read_jsonl_of_missing_file_is_empty(tmp_path):
    assert read_jsonl(tmp_path / "none.jsonl") == []
    (tmp_path / "x.jsonl").write_text(json.dumps({"a": 1}) + "\n\n")
    assert read_jsonl(tmp_path / "x.jsonl") == [{"a": 1}]


@pytest.fixture(params=[(0o022, 0o644), (0o002, 0o664)], ids=["umask022", "umask002"])
def umask_and_mode(request):
    """Sets the process umask for one test; yields the mode a new file must get (0666 & ~umask)."""
    umask, mode = request.param
    old = os.umask(umask)
    yield mode
    os.umask(old)


def test_atomic_writes_respect_the_umask(tmp_path, umask_and_mode):
    """tempfile.mkstemp would leave every file 0600, unreadable to the group even where the umask allows it."""
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    append_jsonl(tmp_path / "results.jsonl", {"run": "a"})
    append_jsonl(tmp_path / "results.jsonl", {"run": "b"})
    save_safetensors({"t": torch.zeros(4)}, tmp_path / "t.safetensors")
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(("a.json", "results.jsonl", "t.safetensors"), umask_and_mode)


def test_umask_is_read_without_changing_it():
    old = os.umask(0o027)
    try:
        assert io.current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still in force
    finally:
        os.umask(old)


def test_a_failed_write_names_the_target_not_the_temp_file(tmp_path, monkeypatch):
    def no_space(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))

    monkeypatch.setattr("synthgap.io.os.replace", no_space)
    target = tmp_path / "results.jsonl"
    with pytest.raises(OSError) as caught:
        append_jsonl(target, {"run": "a"})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_safetensors_io_errors_become_os_errors_naming_the_file(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def full_disk(tensors, filename, metadata=None):
        raise SafetensorError(f'Error while serializing: I/O error: No space left (os error 28) at path "{filename}"')

    monkeypatch.setattr("safetensors.torch.save_file", full_disk)
    target = tmp_path / "model.safetensors"
    with pytest.raises(OSError) as caught:
        save_safetensors({"t": torch.zeros(2)}, target)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_file_digest_streams_the_same_sha256_as_hashlib(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "HASH_CHUNK", 1000)  # several chunks and a short last one
    data = os.urandom(4321)
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_verify_file_catches_changes_and_malformed_records(tmp_path):
    path = tmp_path / "t.safetensors"
    record = save_safetensors({"t": torch.arange(1000.0)}, path)
    assert verify_file(path, record) is None
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert verify_file(path, record) == "checksum mismatch"
    path.write_bytes(bytes(data[:100]))
    assert verify_file(path, record).startswith("size mismatch: 100 bytes")
    assert verify_file(path, None) == verify_file(path, {"sha256": 5}) == "its checksum record is missing or malformed"
    assert verify_file(tmp_path / "gone", record).startswith("cannot read it")


def test_read_jsonl_numbered_counts_blank_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl_numbered(path) == [(1, {"a": 1}), (3, {"a": 2})]


def test_check_folder_path_refuses_a_file_without_creating_anything(tmp_path):
    (tmp_path / "file").write_text("")
    for path in (tmp_path / "file", tmp_path / "file" / "exp"):
        with pytest.raises(NotADirectoryError) as caught:
            check_folder_path(path)
        assert caught.value.filename == str(path)
    check_folder_path(tmp_path / "new" / "exp")  # a folder still to be made is fine
    check_folder_path(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
