"""The exception types the command line turns into a single clear error line, and the one warning line.

`SynthgapError` (and its subclasses) means bad input or an unusable file: the CLI prints `synthgap: error: ...` and
exits 2. An `OSError` from the file system (read-only disk, full disk, `--out` naming a file) is the user's to fix too;
`os_error_message` turns it into the same kind of line.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

LOG = logging.getLogger("synthgap")


class SynthgapError(Exception):
    """A user-facing problem (bad input, missing data, invalid spec). The CLI prints it without a traceback."""


class BadImageError(SynthgapError):
    """An image file that cannot be decoded."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot decode image {path}: {reason} (use --skip-bad to skip unreadable files)")
        self.path = path


class DivergenceError(SynthgapError):
    """Training produced a non-finite loss or non-finite weights: the run's numbers would mean nothing.

    Raised by `fit` before it returns the model, so no result, checkpoint or record is written for the run.
    """

    def __init__(self, desc: str, what: str, *, epoch: int, step: int, lr: float) -> None:
        super().__init__(
            f"{desc} diverged: {what} at epoch {epoch}, step {step} (lr {lr:.3g}); nothing was recorded — "
            "lower recipe.lr"
        )
        self.desc, self.epoch, self.step, self.lr = desc, epoch, step, lr


class CorruptCheckpointError(SynthgapError):
    """A checkpoint whose weights do not match the checksum written with them, or that cannot be parsed."""

    def __init__(self, folder: object, reason: str) -> None:
        super().__init__(f"checkpoint {folder} cannot be used: {reason}; delete it and train the model again")
        self.folder = folder
        self.reason = reason


def warn(message: str) -> None:
    """One `synthgap: warning: ...` line on stderr (logging's last-resort handler prints bare messages when the
    application configured no logging; a test or an application that did configure it captures the record)."""
    LOG.warning("synthgap: warning: %s", message)


# errno → (verb, cause). The verb says what the program was doing when the cause is unambiguous about it.
_OS_CAUSES: dict[int, tuple[str, str]] = {
    errno.EACCES: ("access", "permission denied"),
    errno.EPERM: ("access", "operation not permitted"),
    errno.EROFS: ("write", "read-only file system"),
    errno.ENOSPC: ("write", "no space left on device"),
    errno.EDQUOT: ("write", "disk quota exceeded"),
    errno.ENOENT: ("find", "no such file or folder"),
    errno.EISDIR: ("use", "it is a folder, not a file"),
}


def os_error_message(exc: OSError) -> str:
    """One line naming the path and the cause of a file-system error, e.g.
    `cannot write /x/results.jsonl: read-only file system`. The CLI prints it like a `SynthgapError`."""
    path = exc.filename2 if exc.filename2 is not None else exc.filename  # a rename names its destination second
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and path is not None:
        return _not_a_folder_message(Path(path), exc)
    verb, cause = _OS_CAUSES.get(exc.errno or -1, ("access", _generic_cause(exc)))
    return f"cannot {verb} {path}: {cause}" if path is not None else f"file system error: {cause}"


def _not_a_folder_message(path: Path, exc: OSError) -> str:
    """ENOTDIR / EEXIST: some part of `path` that must be a folder is a file (typically `--out` naming a file)."""
    for part in (path, *path.parents):
        if part.is_file():
            where = "it is a file" if part == path else f"{part} is a file"
            return f"cannot use {path}: {where}, not a folder"
    if exc.errno == errno.EEXIST:
        return f"cannot create {path}: it already exists"
    return f"cannot use {path}: a part of the path is not a folder"


def _generic_cause(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]
