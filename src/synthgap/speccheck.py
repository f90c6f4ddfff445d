"""The keys and kinds of an experiment spec, checked before anything heavy is imported.

`synthgap.experiments.spec` (the pydantic spec) imports every kind, and with them torch, torchvision and timm: seconds
on a loaded machine before a typo could be reported. `check_spec_keys` reads the spec's shape from the source files
of those classes instead (`ast`, nothing executed): the top-level keys, the keys of each section (data, model, recipe,
resources) and the kind and keys of each block of `experiments`. It reports unknown keys and kinds in the words the
full validation uses (`recipe.lrr: unknown key (did you mean 'lr'?)`), so either finds a typo with the same line.

It only rejects what the full validation rejects too: sections whose class allows other keys are not checked, and
when the sources cannot be read as expected (an installation without .py files, a class defined some other way)
it checks nothing and leaves every decision to the full validation.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from synthgap.errors import BOUND_WORDS, SynthgapError, out_of_bounds, unknown_choice, unknown_key

PACKAGE = Path(__file__).resolve().parent
SPEC_MODULE, SPEC_CLASS = "synthgap.experiments.spec", "ExperimentSpec"
KINDS_MODULE = "synthgap.experiments.kinds"
BLOCKS_FIELD = "experiments"  # the spec's list of blocks, one per kind (discriminated by `kind`)


class SpecKeyError(SynthgapError):
    """An unknown key or kind in a spec, found without importing the spec's classes."""


@dataclass(frozen=True)
class Shape:
    """The keys a pydantic model takes (aliases where given), and whether it rejects others."""

    keys: tuple[str, ...]
    forbids_others: bool
    # key → its annotation and the module that writes it (a base class's module for an inherited field), for
    # following a section to its class through that module's imports
    annotations: dict[str, tuple[ast.expr, str]]
    module: str  # where the class is defined
    # key → (int | float, {ge/gt/le/lt: bound}) of `x: int = Field(..., ge=1)`; key → the values of a `Literal[...]`
    bounds: dict[str, tuple[str, dict[str, float]]] = field(default_factory=dict)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class SpecShape:
    top: Shape
    sections: dict[str, Shape]  # top-level key → the shape of the model it holds
    kinds: dict[str, Shape]  # kind name → the shape of its block


class _Unreadable(Exception):
    """The sources are not what this module understands: check nothing."""


def check_spec_keys(raw: dict[str, Any], where: str) -> None:
    """Raise `SpecKeyError` (`where: loc: message; ...`) when `raw` has keys or kinds the spec does not take."""
    problems = spec_key_problems(raw)
    if problems:
        raise SpecKeyError(f"{where}: " + "; ".join(f"{loc}: {message}" for loc, message in problems))


def spec_key_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(location, message) of each unknown key or kind of `raw`, in the order of the spec; empty when the shape of
    the spec cannot be read from the sources."""
    shape = spec_shape()
    if shape is None or not isinstance(raw, dict):
        return []
    problems = _unknown_keys(raw, shape.top, "") + _bad_values(raw, shape.top, "")
    for key, value in raw.items():
        if key in shape.sections and isinstance(value, dict):
            problems += _unknown_keys(value, shape.sections[key], f"{key}.")
            problems += _bad_values(value, shape.sections[key], f"{key}.")
    blocks = raw.get(BLOCKS_FIELD)
    if isinstance(blocks, list):
        for number, block in enumerate(blocks):
            if not isinstance(block, dict) or not isinstance(block.get("kind"), str):
                continue  # not a block at all: the full validation says what it should be
            where = f"{BLOCKS_FIELD}.{number}"
            kind = shape.kinds.get(block["kind"])
            if kind is None:
                problems.append((where, unknown_choice("kind", block["kind"], sorted(shape.kinds))))
            else:
                problems += _unknown_keys(block, kind, f"{where}.{block['kind']}.")  # as pydantic locates them
                problems += _bad_values(block, kind, f"{where}.{block['kind']}.")
    return problems


def _unknown_keys(section: dict[str, Any], shape: Shape, prefix: str) -> list[tuple[str, str]]:
    if not shape.forbids_others:
        return []
    return [(f"{prefix}{key}", unknown_key(key, shape.keys)) for key in section if key not in shape.keys]


_BOUND_HOLDS = {"gt": float.__gt__, "ge": float.__ge__, "lt": float.__lt__, "le": float.__le__}


def _bad_values(section: dict[str, Any], shape: Shape, prefix: str) -> list[tuple[str, str]]:
    """Numbers outside their field's bounds and names outside their `Literal`, worded as the full validation words
    them (`must be at least 1, got -3`). Values of another type are left to the full validation."""
    problems = []
    for key, value in section.items():
        if key in shape.bounds and isinstance(value, int | float) and not isinstance(value, bool):
            kind, bounds = shape.bounds[key]
            if (kind == "int" and not isinstance(value, int)) or not math.isfinite(value):
                continue  # another type, NaN or inf: the full validation words them
            for name, bound in bounds.items():
                if not _BOUND_HOLDS[name](float(value), float(bound)):
                    limit = float(bound) if kind == "float" else bound  # as pydantic reports a float field's
                    problems.append((f"{prefix}{key}", out_of_bounds(name, limit, value)))
                    break
        elif key in shape.choices and isinstance(value, str) and value not in shape.choices[key]:
            problems.append((f"{prefix}{key}", unknown_choice("value", value, shape.choices[key])))
    return problems


@cache
def spec_shape() -> SpecShape | None:
    """The spec's keys as the sources define them, or None when they cannot be read that way."""
    try:
        top = _shape(SPEC_MODULE, SPEC_CLASS)
        sections = {}
        for key, (annotation, module) in top.annotations.items():
            if isinstance(annotation, ast.Name) and key != BLOCKS_FIELD:
                found = _find_class(module, annotation.id)
                if found is not None:
                    sections[key] = _shape(found[1], annotation.id)
        return SpecShape(top, sections, _kinds())
    except (_Unreadable, OSError, SyntaxError, RecursionError):
        return None


def _kinds() -> dict[str, Shape]:
    """Each registered kind → the shape of its block (`KIND = Kind(<name>, <block class>, ...)`)."""
    kinds: dict[str, Shape] = {}
    for module in _kind_modules():
        name, block = _registration(module)
        kinds[name] = _shape(module, block)
    return kinds


def _kind_modules() -> list[str]:
    """The modules `experiments/kinds/__init__.py` imports, each registering one kind."""
    modules = [
        f"{KINDS_MODULE}.{alias.name}"
        for node in _tree(KINDS_MODULE).body
        if isinstance(node, ast.ImportFrom) and node.module == KINDS_MODULE
        for alias in node.names
    ]
    if not modules:
        raise _Unreadable(KINDS_MODULE)
    return modules


@cache
def n_options() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each kind that takes `synthgap run --n` → (the block key it sets, the keys it drops): the `n_option` of its
    registration, read from the source; imported from the registry when the sources cannot be read that way."""
    try:
        return {name: option for name, option in map(_n_option, _kind_modules()) if option is not None}
    except (_Unreadable, OSError, SyntaxError, ValueError):
        from synthgap.experiments.kinds import KINDS

        return {
            name: (kind.n_option.key, kind.n_option.clears)
            for name, kind in ((name, KINDS.get(name)) for name in KINDS)
            if kind.n_option is not None
        }


def _n_option(module: str) -> tuple[str, tuple[str, ...] | None]:
    """(kind name, the literal arguments of its `n_option=NOption(key, clears=(...))`, or None without one)."""
    name, _ = _registration(module)
    for keyword in _registration_call(module).keywords:
        if keyword.arg == "n_option" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is None):
            option = keyword.value
            if not isinstance(option, ast.Call) or _name(option.func) != "NOption":
                raise _Unreadable(f"{module}.KIND n_option")
            values = dict(zip(("key", "clears"), map(ast.literal_eval, option.args), strict=False))
            values |= {item.arg: ast.literal_eval(item.value) for item in option.keywords}
            return name, (values["key"], tuple(values.get("clears", ())))
    return name, None


def _registration(module: str) -> tuple[str, str]:
    """(kind name, block class name) of the module's `KIND = Kind(name, block, ...)`."""
    call = _registration_call(module)
    arguments = dict(zip(("name", "block"), call.args, strict=False))
    arguments |= {keyword.arg: keyword.value for keyword in call.keywords if keyword.arg in ("name", "block")}
    name, block = _constant(arguments.get("name")), _name(arguments.get("block"))
    if not isinstance(name, str) or block is None:
        raise _Unreadable(f"{module}.KIND")
    return name, block


def _registration_call(module: str) -> ast.Call:
    """The `Kind(...)` call of the module's `KIND = Kind(...)`."""
    for node in _tree(module).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "KIND" for t in node.targets)
            and isinstance(node.value, ast.Call)
        ):
            return node.value
    raise _Unreadable(f"{module}.KIND")


def _shape(module: str, name: str, depth: int = 0) -> Shape:
    """The fields of class `name` of `module`, its bases' first, and whether it (or a base) forbids other keys."""
    if depth > 20:
        raise _Unreadable(name)
    found = _find_class(module, name)
    if found is None:
        raise _Unreadable(f"{module}.{name}")
    node, defined_in = found
    keys: list[str] = []
    annotations: dict[str, tuple[ast.expr, str]] = {}
    bounds: dict[str, tuple[str, dict[str, float]]] = {}
    choices: dict[str, tuple[str, ...]] = {}
    forbids: bool | None = None
    for base in node.bases:
        base_name = _name(base)
        if base_name == "BaseModel":
            continue
        if base_name is None:
            raise _Unreadable(f"{module}.{name}")
        inherited = _shape(defined_in, base_name, depth + 1)
        keys += [key for key in inherited.keys if key not in keys]
        annotations |= inherited.annotations
        bounds |= inherited.bounds
        choices |= inherited.choices
        forbids = inherited.forbids_others
    for keyword in node.keywords:  # class X(BaseModel, extra="forbid")
        if keyword.arg == "extra":
            forbids = _constant(keyword.value) == "forbid"
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            field = statement.target.id
            if field.startswith("_") or _name(_unsubscripted(statement.annotation)) == "ClassVar":
                continue
            for key in dict.fromkeys((_alias(statement.value) or field, field)):  # pydantic may take either
                if key not in keys:
                    keys.append(key)
                annotations[key] = (statement.annotation, defined_in)
                _read_constraints(key, statement, bounds, choices)
        elif isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "model_config" for target in statement.targets
        ):
            extra = _config_extra(statement.value)
            if extra is not None:
                forbids = extra == "forbid"
    return Shape(tuple(keys), bool(forbids), annotations, defined_in, bounds, choices)


def _read_constraints(
    key: str, statement: ast.AnnAssign, bounds: dict[str, tuple[str, dict[str, float]]], choices: dict
) -> None:
    """The bounds of `x: int | float = Field(..., ge=...)` and the values of `x: Literal[...]`, where a field
    spells them as constants (anything else is left to the full validation)."""
    annotation, value = statement.annotation, statement.value
    if isinstance(annotation, ast.Name) and annotation.id in ("int", "float"):
        if isinstance(value, ast.Call) and _name(value.func) == "Field":
            found = {k.arg: _constant(k.value) for k in value.keywords if k.arg in BOUND_WORDS}
            if found and all(isinstance(b, int | float) and not isinstance(b, bool) for b in found.values()):
                bounds[key] = (annotation.id, found)
    elif isinstance(annotation, ast.Subscript) and _name(annotation.value) == "Literal":
        items = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        names = [_constant(item) for item in items]
        if names and all(isinstance(name, str) for name in names):
            choices[key] = tuple(names)


def _find_class(module: str, name: str, depth: int = 0) -> tuple[ast.ClassDef, str] | None:
    """The class `name` as `module` defines or imports it (absolute imports within synthgap), and its module."""
    if depth > 10:
        return None
    tree = _tree(module)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node, module
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == name and node.module.split(".")[0] == "synthgap":
                    return _find_class(node.module, alias.name, depth + 1)
    return None


@cache
def _tree(module: str) -> ast.Module:
    parts = module.split(".")
    if parts[0] != "synthgap":
        raise _Unreadable(module)
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    raise _Unreadable(module)


def _name(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _unsubscripted(node: ast.expr) -> ast.expr:
    return node.value if isinstance(node, ast.Subscript) else node


def _constant(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _alias(value: ast.expr | None) -> str | None:
    """The `alias=` of a `Field(...)` default."""
    if isinstance(value, ast.Call) and _name(value.func) == "Field":
        for keyword in value.keywords:
            if keyword.arg in ("alias", "validation_alias"):
                alias = _constant(keyword.value)
                if not isinstance(alias, str):
                    raise _Unreadable("Field alias")
                return alias
    return None


def _config_extra(value: ast.expr) -> str | None:
    """`extra` of `model_config = ConfigDict(extra=...)` (or a dict literal)."""
    if isinstance(value, ast.Call):
        for keyword in value.keywords:
            if keyword.arg == "extra":
                return str(_constant(keyword.value))
            if keyword.arg is None:  # ConfigDict(**something): cannot tell
                raise _Unreadable("model_config")
    elif isinstance(value, ast.Dict):
        for key, item in zip(value.keys, value.values, strict=True):
            if key is not None and _constant(key) == "extra":
                return str(_constant(item))
    else:
        raise _Unreadable("model_config")
    return None
