"""Layered configuration: defaults → YAML file → command-line overrides, validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from synthgap.errors import SynthgapError, validation_problems
from synthgap.io import atomic_write_text

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SynthgapError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise SynthgapError(f"{path}: not a text (UTF-8) file") from None
    except yaml.YAMLError as exc:
        raise SynthgapError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SynthgapError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def set_dotted(tree: dict[str, Any], dotted_key: str, value: Any) -> None:
    """Set ``tree["a"]["b"] = value`` for the key ``"a.b"``, creating levels as needed; a number indexes a list that
    is already there (``experiments.0.seeds``: the first block's seeds)."""
    *parents, leaf = dotted_key.split(".")
    node: Any = tree
    for depth, key in enumerate([*parents, leaf], start=1):
        where = ".".join([*parents, leaf][:depth])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise SynthgapError(
                    f"cannot set {dotted_key}: {where.rpartition('.')[0]} is a list of {len(node)}; "
                    f"index it with 0..{len(node) - 1}"
                )
            key = int(key)
        elif not isinstance(node, dict):  # e.g. `name.x=1` where name is a string: say so rather than crash
            raise SynthgapError(f"cannot set {dotted_key}: {where.rpartition('.')[0]} is not a mapping or a list")
        if depth == len(parents) + 1:
            node[key] = value
        elif isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            node = node[key]


def parse_override(item: str) -> tuple[str, Any]:
    """A command-line `--set KEY=VALUE` as (dotted key, value), the value read as YAML.

    `safe_load` builds plain values only (a `!!python/...` tag is refused, never run); a value that is not valid
    YAML is one error line naming the --set item.
    """
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise SynthgapError(f"--set expects KEY=VALUE, got {item!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SynthgapError(f"--set {item!r}: the value is not a plain YAML value ({reason})") from None
    return key.strip(), value


def validate(cls: type[M], data: dict[str, Any], *, where: str = "config") -> M:
    """Build `cls` from plain data; the first validation problem becomes one readable error line."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        if all(error["type"] == "synthgap" for error in exc.errors()):  # already in synthgap's words (specs)
            pairs = [(tuple(error["loc"]), error["msg"]) for error in exc.errors()]
        else:
            pairs = validation_problems(exc, cls, data)
        problems = [f"{'.'.join(str(part) for part in loc) or '(top level)'}: {message}" for loc, message in pairs]
        raise SynthgapError(f"{where}: " + "; ".join(problems)) from None


def save_config(config: BaseModel, path: Path) -> None:
    """The resolved config, written next to a run's outputs so the run can be reproduced exactly."""
    atomic_write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
