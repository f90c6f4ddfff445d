"""The exception types the command line turns into a single clear error line, and the one warning line.

`SynthgapError` (and its subclasses) means bad input or an unusable file: the CLI prints `synthgap: error: ...` and
exits 2. An `OSError` from the file system (read-only disk, full disk, `--out` naming a file) is the user's to fix too;
`os_error_message` turns it into the same kind of line.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args, get_origin

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

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


# --- wording shared by every check of names and keys ----------------------------------------------------------------


def did_you_mean(name: object, choices: Iterable[object]) -> str:
    """` (did you mean 'x'?)` when one of `choices` is close to `name` (difflib), else an empty string."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(choice) for choice in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_choice(what: str, name: object, choices: Iterable[object]) -> str:
    """`unknown kind 'baselines' (did you mean 'baseline'?); choose from: augmentation, baseline, ...`"""
    choices = [str(choice) for choice in choices]
    return f"unknown {what} {shown(name)}{did_you_mean(name, choices)}; choose from: {', '.join(choices)}"


def unknown_key(key: object, known: Iterable[str]) -> str:
    """The message of a key a section does not take: a close known key when there is one, else all of them."""
    known = list(known)
    hint = did_you_mean(key, known)
    return f"unknown key{hint}" if hint or not known else f"unknown key; known keys: {', '.join(known)}"


def shown(value: object, limit: int = 60) -> str:
    """A value as an error line shows it: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validation_problems(exc: ValidationError, model: type[BaseModel], data: object) -> list[tuple[tuple, str]]:
    """The problems of a pydantic `ValidationError` raised by `model.model_validate(data)`, as (location, message)
    pairs in synthgap's words: `recipe.lr` / `must be greater than 0, got -1` rather than pydantic's
    `Input should be greater than 0`.

    The location is the path of keys and list positions in `data`, with the tag of a discriminated union where
    pydantic gives it (`layer_transfer` in `experiments.0.layer_transfer.n`: the kind of block 0); the tags of the
    other union members (`str`, `list[int]`) are left out, and several failed forms of one union value become one
    problem (`expected a list or 'auto', got 'x'`)."""
    entries: list[tuple[str, tuple]] = []  # a problem, or where the problems of a union value go
    unions: dict[tuple, list[dict]] = {}  # path of a union value (or block) → the errors of its members
    for error in exc.errors():
        path, tags = _data_path(data, error)
        if tags:  # the error belongs to a form of a union value (or to a discriminated block): the innermost one
            prefix = path[: tags[-1]]
            if prefix not in unions:
                entries.append(("union", prefix))
            unions.setdefault(prefix, []).append(error)
        else:
            entries.append(("problem", (path, error_message(error, model))))
    problems: list[tuple[tuple, str]] = []
    for what, item in entries:
        problems += [item] if what == "problem" else _union_problems(item, unions[item], model, data)
    return problems


# pydantic error type → what the value should have been, for "expected ..., got ..." lines
_EXPECTED = {
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "dataclass_type": "a mapping (key: value)",
    "dataclass_exact_type": "a mapping (key: value)",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "path_type": "a path",
    "none_required": "null",
}
BOUND_WORDS = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}  # Field(gt=...) etc.
_BOUNDS = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}


def out_of_bounds(bound: str, limit: object, value: object) -> str:
    """`must be at least 1, got -3`: a value outside a field's `bound` ("gt", "ge", "lt", "le") of `limit`."""
    return f"must be {BOUND_WORDS[bound]} {limit}, got {shown(value)}"


def error_message(error: dict, model: type[BaseModel] | None = None) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) in synthgap's words; `model`, the model validated,
    names the known keys of an unknown one."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "required, but not given"
    if kind == "extra_forbidden":
        return unknown_key(error["loc"][-1], _known_keys(model, error["loc"][:-1]) if model else [])
    if kind == "union_tag_invalid":
        return unknown_choice(
            ctx.get("discriminator", "tag").strip("'"), ctx.get("tag"), _quoted(ctx.get("expected_tags", ""))
        )
    if kind == "union_tag_not_found":
        return f"missing key {ctx.get('discriminator', 'tag')}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {shown(value)}"
    if kind == "finite_number":
        return f"must be a finite number, got {shown(value)}"
    if kind in _BOUNDS:
        return out_of_bounds(_BOUNDS[kind], ctx.get(_BOUNDS[kind]), value)
    if kind == "too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"needs at least {least} items, got {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"takes at most {ctx.get('max_length')} items, got {ctx.get('actual_length')}"
    if kind in ("literal_error", "enum"):
        return unknown_choice("value", value, _quoted(ctx.get("expected", "")))
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    text = error["msg"]
    return "must be" + text[len("Input should be") :] if text.startswith("Input should be") else text


def _quoted(text: str) -> list[str]:
    """`'a', 'b' or 'c'` (pydantic's list of expected values) → [a, b, c]."""
    import re

    return re.findall(r"'((?:[^'\\]|\\.)*)'", text)


def _data_path(data: object, error: dict) -> tuple[tuple, list[int]]:
    """(the error's location as keys and positions of `data`, the positions in that path where pydantic's location
    had a union or discriminator tag, which is not part of the data and is dropped)."""
    path: list = []
    tags: list[int] = []
    node = data
    loc = error["loc"]
    for number, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif number == len(loc) - 1 and error["type"] == "missing":
            pass  # a required key that is not there: part of the path all the same
        elif isinstance(node, dict) and part in [value for value in node.values() if isinstance(value, str)]:
            pass  # the tag of a discriminated union (a block's kind): it says which form the mapping is
        else:
            tags.append(len(path))
            continue
        path.append(part)
    return tuple(path), tags


def _union_problems(
    prefix: tuple, members: list[dict], model: type[BaseModel], data: object
) -> list[tuple[tuple, str]]:
    """One union value's errors: those of the forms the value got into (a mapping whose keys are wrong, say), or when
    it fits no form at all, one `expected A or B, got X` line."""
    deeper = []
    expected: list[str] = []
    for error in members:
        path, _ = _data_path(data, error)
        at_member = len(path) == len(prefix)  # the value itself is not of the member's type
        if at_member and (error["type"] in _EXPECTED or error["type"] == "literal_error"):
            if error["type"] == "literal_error":
                choices = ", ".join(repr(v) for v in _quoted((error.get("ctx") or {}).get("expected", "")))
                expected.append(choices)
            else:
                expected.append(_EXPECTED[error["type"]])
        else:
            deeper.append((path, error_message(error, model)))
    if deeper:
        return list(dict.fromkeys(deeper))
    value = members[0].get("input")
    forms = list(dict.fromkeys(expected))
    return [(prefix, f"expected {' or '.join(forms)}, got {shown(value)}")]


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the pydantic model at `loc` (pydantic's location, tags included) within `model` takes; empty when
    the location does not lead to one model."""
    from pydantic import BaseModel

    def models_in(annotation: object) -> list[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        found = []
        for arg in get_args(annotation):
            found += models_in(arg)
        return found

    def tag(cls: type[BaseModel]) -> set[str]:
        names = {cls.__name__}
        for field in cls.model_fields.values():
            if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1:
                names.add(str(get_args(field.annotation)[0]))
        return names

    current = [model]
    for part in loc:
        following: list[type[BaseModel]] = []
        for cls in current:
            fields = {field.alias or name: field for name, field in cls.model_fields.items()}
            if isinstance(part, str) and part in fields:
                following += models_in(fields[part].annotation)
            elif isinstance(part, int) or (isinstance(part, str) and part in tag(cls)):
                following.append(cls)
        current = list(dict.fromkeys(following))
        if not current:
            return []
    if len(current) != 1:
        return []
    return [field.alias or name for name, field in current[0].model_fields.items()]
