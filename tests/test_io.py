import json

import pytest

from synthgap.io import append_jsonl, atomic_write_text, read_jsonl


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
