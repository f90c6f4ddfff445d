"""Crash-safe file writes and content checksums: a reader never sees a half-written file, nor trusts a damaged one.

Every writer here creates a temp file next to the target, fsyncs it and renames it over the target (atomic on POSIX).
Files come out with the usual permissions (0666 filtered by the umask), not the 0600 of `tempfile.mkstemp`.
An `OSError` always names the target file, not the temp file, so the CLI's one error line points at the right path.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthgap.errors import SynthgapError

CHECKSUM = "sha256"  # SHA-NI makes it ~1.4 GB/s here, faster than blake2b (~0.8 GB/s): benchmarks/README.md
HASH_CHUNK = 1 << 20  # bytes read per hash update: one reused buffer, never a copy of the whole file
HASH_THREADS = 8  # hashlib and file reads release the GIL: a few threads keep a disk or an NFS mount busy


def file_digest(path: Path, algorithm: str = CHECKSUM) -> str:
    """The hex digest (SHA-256 unless asked otherwise) of a file's bytes, read in 1 MiB chunks into one buffer, so
    memory stays flat for big files."""
    digest = hashlib.new(algorithm)
    buffer = bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while size := f.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


def file_version(st: os.stat_result) -> str:
    """What names one version of a file without reading it: its size, modification and change time (ns). The change
    time is included because a file swapped in with `mv` or `cp -p` keeps its mtime, but not its ctime. Caches that
    remember a digest of the bytes (the decoded cache's key, a manifest's verified digests) remember it under this."""
    return f"{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"


def folder_argument(value: object, what: str) -> Path:
    """`value` as a folder path; anything but a non-empty str or path is one error line naming the argument `what`
    (how every public function takes its folder arguments)."""
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise SynthgapError(f"{what} must be a folder path (a str or a pathlib.Path), got {value!r}")
    return Path(value)


def check_folder_path(path: Path) -> None:
    """Refuse a folder path that cannot be made because it, or a folder above it, is a file, without creating
    anything (a dry run writes nothing). The `NotADirectoryError` is worded by `errors.os_error_message` as the
    failed `mkdir` of a real run is, so both stop with the same line."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
            return


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask can only be read by setting it,
    which would briefly give files created by other threads the wrong mode)."""
    with contextlib.suppress(OSError):
        match = re.search(r"^Umask:\s*([0-7]+)$", Path("/proc/self/status").read_text(), re.MULTILINE)
        if match:
            return int(match.group(1), 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temp file next to `path` (`.<name>.<random>.tmp`, the pattern stale-file clean-ups look for),
    opened for writing with mode 0666 so the kernel applies the umask as for any ordinary file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # a name clash of 48 random bits: draw again
            continue


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable; best effort (some file systems cannot fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _naming_errors(path: Path) -> Iterator[None]:
    """Re-raise an OSError naming `path` (the file the caller asked for) instead of a temp file or nothing."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None or exc.filename == str(path):
            raise
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc  # same subclass


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to `path` for a writer that needs a file name (e.g. safetensors' `save_file`).

    When the block ends normally the temp file gets the umask's permissions, is fsynced and renamed over `path`;
    when it raises, the temp file is removed and `path` is untouched.
    """
    path = Path(path)
    with _naming_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path)
        os.close(fd)
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~current_umask())  # some writers (safetensors) replace the file and leave it 0600
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temp file in the same folder, fsync, then rename over `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_safetensors(tensors: dict[str, Any], path: Path, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Write a safetensors file atomically and return its checksum record `{"sha256": hex, "bytes": size}`.

    The digest is taken from the written file (still in the page cache), so it covers exactly the bytes a reader
    will hash. safetensors reports I/O failures as its own exception type; they are raised as `OSError` naming
    `path`, so a full or read-only disk gives the usual one-line message.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as exc:
            raise _safetensors_os_error(exc, path) from exc
        record = {CHECKSUM: file_digest(tmp), "bytes": tmp.stat().st_size}
    return record


def _safetensors_os_error(exc: Exception, path: Path) -> Exception:
    """`... I/O error: No space left on device (os error 28) ...` → OSError(28, ..., path); other errors as they are."""
    match = re.search(r"os error (\d+)", str(exc))
    if not match:
        return exc
    code = int(match.group(1))
    return OSError(code, os.strerror(code), str(path))


def verify_file(path: Path, record: Any) -> str | None:
    """Why `path` does not match a checksum record from `save_safetensors` (None when it matches).

    The size is compared first: a truncated file is caught without reading it.
    """
    if (
        not isinstance(record, dict)
        or not isinstance(record.get(CHECKSUM), str)
        or not isinstance(record.get("bytes"), int)
    ):
        return "its checksum record is missing or malformed"
    try:
        size = Path(path).stat().st_size
        if size != record["bytes"]:
            return f"size mismatch: {size} bytes, expected {record['bytes']}"
        if file_digest(path) != record[CHECKSUM]:
            return "checksum mismatch"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All records of a JSON-lines file; a missing file has none."""
    return [record for _, record in read_jsonl_numbered(path)]


def read_jsonl_numbered(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of every non-blank line of a JSON-lines file, so a reader that finds a record of the
    wrong shape can name its line; a missing file has none."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise SynthgapError(f"{path} is not a text file; it was damaged outside synthgap") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):  # files here are replaced whole, so a torn line was damaged from outside
            raise SynthgapError(
                f"{path}, line {number}: not a JSON object; the file was damaged outside synthgap "
                "(restore it, or remove the damaged line)"
            )
        records.append((number, record))
    return records


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one record by rewriting the whole file atomically.

    Results files hold one line per finished run (hundreds at most), so a full rewrite is cheap, and unlike a
    plain append it can never leave a torn last line if the process is killed mid-write.
    """
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + json.dumps(record, sort_keys=True) + "\n")
