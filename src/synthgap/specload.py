"""A spec as `synthgap run` and `synthgap.run` take it: read once, the options layered on it, validated, and an
error blamed on the layer that caused it.

Layers, in order: the spec (a file, YAML text, a dict or a validated `ExperimentSpec`), then the options that change
it (`data_root`, `epochs`, `per_class`, `width`, `seeds`, `n`, each `overrides` item in turn, `skip_bad`). Keys and
kinds are checked before the spec's classes (and torch) are imported (`synthgap.speccheck`), then the whole spec is
validated. An error the spec has on its own names the spec; one that an option brings about names that option as
the caller wrote it (`--n 25: experiments.1: ...` on the command line, `n=[25]: experiments.1: ...` in Python).
Importing this module is cheap.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from synthgap.errors import SynthgapError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from synthgap.experiments.spec import ExperimentSpec

    M = TypeVar("M", bound=BaseModel)

Source = str | os.PathLike | Mapping[str, Any]  # a YAML file, YAML text, or the mapping itself


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How `run` changes the spec and where its runs execute: the options of `synthgap run`.

    Spec changes (applied before validation): `data_root`, `seeds` (every block's seeds), `n` (the N values of every
    block whose kind takes it: its `Kind.n_option`, e.g. layer_transfer), `epochs`, `per_class` (N, "max:N" or
    {"max": N}, "balanced", "matched"), `width`, `overrides` ({dotted key: value}, or "KEY=VALUE" strings with YAML
    values as `--set`), `skip_bad`.
    Execution: `backend` (local | ray | slurm), `address`, `workers`, `cpus_per_run`, `gpus_per_run`, `nproc`
    (the processes each run trains in on each machine: `experiments.group`), `nodes_per_run` (machines, slurm),
    `slurm_partition`, `slurm_time`
    (minutes), `slurm_cluster`, `model_cache`, `rerun_changed`, `keep_going`, `progress` (progress bars)."""

    data_root: str | os.PathLike | None = None
    seeds: Sequence[int] | None = None
    n: Sequence[int] | None = None
    epochs: int | None = None
    per_class: int | str | Mapping | None = None
    width: float | None = None
    overrides: Mapping[str, Any] | Sequence[str] | None = None
    skip_bad: bool = False
    backend: str = "local"
    address: str | None = None
    workers: int | None = None
    cpus_per_run: int | None = None
    gpus_per_run: float | None = None
    nproc: int = 1
    nodes_per_run: int | None = None
    slurm_partition: str | None = None
    slurm_time: int | None = None
    slurm_cluster: str | None = None
    model_cache: str | os.PathLike | None = None
    rerun_changed: bool = False
    keep_going: bool = False
    progress: bool = True


# the RunOptions fields that change the spec, in the order `spec_data` applies them (`overrides` and `skip_bad` last)
SPEC_OPTIONS = ("data_root", "epochs", "per_class", "width", "seeds", "n")


def keyword_label(field: str, value: Any) -> str:
    """How a Python caller wrote an option: `n=[25]`, `overrides['recipe.lr']=-1` (a "KEY=VALUE" item as given)."""
    if field == "overrides":
        return f"overrides {value!r}" if isinstance(value, str) else f"overrides[{value[0]!r}]={value[1]!r}"
    return f"{field}={value!r}"


def load_spec(
    spec: Source | ExperimentSpec,
    options: RunOptions | None = None,
    label: Callable[[str, Any], str] = keyword_label,
) -> ExperimentSpec:
    """The validated spec: `spec` with the options' changes applied (see the module docstring). `label(field,
    value)` says how the caller wrote an option (an `overrides` item is passed alone), for the error that blames it.

    The loading is repeated only after an error, to find the layer to blame: each of its steps (the spec as data,
    its keys and kinds, the full validation) is tried on the spec alone, then with the options added one at a time;
    the first that fails with the same line is the one to blame."""
    options = options or RunOptions()
    _whole_numbers(options.seeds, "seeds")  # an option that is malformed in itself names itself, unblamed
    _whole_numbers(options.n, "n")
    try:
        return _load(spec, options)
    except SynthgapError as exc:
        failure = exc
    # read once more, then only copied: the file is not read again per option
    raw = (spec.model_dump(mode="json"), "spec") if is_spec(spec) else mapping_source(spec, "spec")
    from synthgap.speccheck import check_spec_keys

    steps = [
        lambda opts: spec_data(raw, opts),
        lambda opts: check_spec_keys(*spec_data(raw, opts)),
        lambda opts: _load(raw, opts),
    ]
    for step in steps:
        try:
            step(options)
        except SynthgapError as exc:
            raise _blamed(exc, step, options, label, raw[1]) from None
    raise failure


def _load(spec: Source | ExperimentSpec | tuple[dict[str, Any], str], options: RunOptions) -> ExperimentSpec:
    from synthgap.speccheck import check_spec_keys

    raw, where = spec_data(spec, options)
    check_spec_keys(raw, where)  # unknown keys and kinds: found before the spec's classes (and torch) are imported
    from synthgap.config import validate
    from synthgap.experiments.spec import ExperimentSpec

    return validate(ExperimentSpec, raw, where=where)


def _changes(options: RunOptions, label: Callable[[str, Any], str]) -> list[tuple[str, dict[str, Any]]]:
    """The options that change the spec, as (the option as the caller wrote it, its `RunOptions` fields), in the
    order `spec_data` applies them; each `overrides` item brings the items up to it."""
    changes = [
        (label(field, getattr(options, field)), {field: getattr(options, field)})
        for field in SPEC_OPTIONS
        if getattr(options, field) is not None
    ]
    overrides = options.overrides or {}
    items = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)
    for number, item in enumerate(items):
        upto = dict(items[: number + 1]) if isinstance(overrides, Mapping) else items[: number + 1]
        changes.append((label("overrides", item), {"overrides": upto}))
    if options.skip_bad:
        changes.append((label("skip_bad", True), {"skip_bad": True}))
    return changes


def _blamed(
    exc: SynthgapError,
    step: Callable[[RunOptions], Any],
    options: RunOptions,
    label: Callable[[str, Any], str],
    where: str,
) -> SynthgapError:
    changes = _changes(options, label)
    if not changes:
        return exc
    message = str(exc)

    def same_failure(opts: RunOptions) -> bool:
        try:
            step(opts)
        except SynthgapError as other:
            return str(other) == message
        return False

    cleared = {field: getattr(RunOptions(), field) for _, updates in changes for field in updates}
    current = replace(options, **cleared)
    if same_failure(current):
        return exc  # the spec on its own
    for text, updates in changes:
        current = replace(current, **updates)
        if same_failure(current):
            prefix = f"{where}: "  # the spec's name goes: the line names the option instead
            rest = message[len(prefix) :] if message.startswith(prefix) else message
            named = rest.startswith(text.split()[0])  # the line names the option already (`--seeds: expected ...`)
            return SynthgapError(rest if named else f"{text}: {rest}")
    return exc


def layered(cls: type[M], raw: dict[str, Any], where: str, values: Mapping[str, Any]) -> M:
    """`cls` validated from `raw` (a config as data, as read: its defaults fill what it leaves out) with each dotted
    value that is not None set on it; errors name `where`. How `synthgap.train` layers its keywords on a config."""
    from synthgap.config import set_dotted, validate

    for key, value in values.items():
        if value is not None:
            set_dotted(raw, key, value)
    return validate(cls, raw, where=where)


def spec_data(
    spec: Source | ExperimentSpec | tuple[dict[str, Any], str], options: RunOptions
) -> tuple[dict[str, Any], str]:
    """(`spec` as plain data with the options' spec changes applied, not validated; where its errors say it came
    from). Imports nothing heavy: the step of `experiment_spec` before validation."""
    from synthgap.config import parse_override, set_dotted
    from synthgap.speccheck import n_options as kind_n_options

    if is_spec(spec):
        raw, where = spec.model_dump(mode="json"), "spec"
    elif isinstance(spec, tuple):  # already read: (the mapping, where it came from), copied so each use starts afresh
        raw, where = copy.deepcopy(spec[0]), spec[1]
    else:
        raw, where = mapping_source(spec, "spec")
    seeds = _whole_numbers(options.seeds, "seeds")
    n = _whole_numbers(options.n, "n")
    data_root = options.data_root and str(options.data_root)
    for key, value in {
        "data.data_root": data_root,
        "recipe.epochs": options.epochs,
        "data.per_class": per_class_value(options.per_class),
        "model.width": options.width,
        "seeds": seeds,
    }.items():
        if value is not None:
            set_dotted(raw, key, value)
    n_options = kind_n_options() if n is not None else {}
    for block in raw.get("experiments") or []:
        if isinstance(block, dict):
            if seeds is not None and "seeds" in block:
                block["seeds"] = seeds
            if block.get("kind") in n_options:  # the kind's own `n_option` says what --n sets and what it replaces
                key, clears = n_options[block["kind"]]
                block[key] = n
                for cleared in clears:
                    block.pop(cleared, None)
    overrides = options.overrides or {}
    pairs = overrides.items() if isinstance(overrides, Mapping) else [parse_override(item) for item in overrides]
    for key, value in pairs:
        set_dotted(raw, key, value)
    if options.skip_bad:
        set_dotted(raw, "data.skip_bad", True)
    return raw, where


def is_spec(value: object) -> bool:
    """Whether `value` is an `ExperimentSpec`, without importing the spec's module (and torch) to find out: none
    can exist before it is imported."""
    module = sys.modules.get("synthgap.experiments.spec")
    return module is not None and isinstance(value, module.ExperimentSpec)


def per_class_value(value: Any) -> Any:
    """A per-class setting as a config value: "500" → 500, "max:500" → {max: 500}; anything else as it is
    (balanced / matched, or a value the config then rejects with a clear error)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    if text.startswith("max:") and text[4:].strip().isdigit():
        return {"max": int(text[4:])}
    return text


def _whole_numbers(values: object, what: str) -> list[int] | None:
    """A list of whole numbers from a sequence of them; a string ("0,1") or other values are one error line."""
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise SynthgapError(f"{what}: expected a list of whole numbers such as [0, 1], got {values!r}")
    bad = [value for value in values if isinstance(value, bool) or not isinstance(value, int)]
    if bad:
        raise SynthgapError(f"{what}: expected whole numbers, got {bad[0]!r} in {list(values)!r}")
    return list(values)


def mapping_source(source: Source, what: str) -> tuple[dict[str, Any], str]:
    """(a deep copy of the mapping, where errors say it came from) for a path, YAML text or a dict.

    A `Path` is always a file; a string is a file when it is one line naming an existing file or ending in
    .yaml/.yml (a missing one is then "config file not found"), and YAML text otherwise."""
    import yaml

    from synthgap.config import read_yaml

    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source)), what
    if isinstance(source, os.PathLike):
        return read_yaml(Path(source)), str(source)
    if not isinstance(source, str):
        raise SynthgapError(f"{what} must be a path, YAML text or a dict, got {type(source).__name__}")
    if "\n" not in source and (source.strip().endswith((".yaml", ".yml")) or Path(source).is_file()):
        return read_yaml(Path(source)), source
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise SynthgapError(f"{what}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SynthgapError(
            f"{what}: expected a mapping at the top level (or a path to a YAML file), got {type(data).__name__}"
        )
    return data, what
