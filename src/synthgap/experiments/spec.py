"""Experiment specs: YAML validated into typed blocks (unknown keys, out-of-range N, bad data references fail).

name: cifake-layers
data: {real: cifake:real, synthetic: cifake:synthetic, test: cifake:real, per_class: 1000}
model: {width: 1.0}
recipe: {epochs: 4}
seeds: [0]
experiments:
  - kind: baseline
  - kind: layer_transfer
    directions: [synthetic_to_real, real_to_synthetic]
    n: [1, 2, 3]

The blocks a spec accepts are those of the registered kinds (`experiments/kinds/`): each kind brings its block and
the checks of that block against the rest of the spec (the model family's layers, the resolution).

`ExperimentSpec.model_validate` words its errors for people (`recipe.lr: must be greater than 0.0, got -1`,
`experiments.0: unknown kind 'baselines' (did you mean 'baseline'?); choose from: ...`), each located by the keys and
list positions of the spec. `synthgap.speccheck` finds unknown keys and kinds with the same words before this module
(and torch with it) is imported.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from synthgap.experiments.blocks import (  # noqa: F401  (the spec's parts, importable from here)
    DIRECTIONS,
    Direction,
    ExperimentData,
    RunResources,
    Side,
    Strict,
)
from synthgap.experiments.kinds import KINDS
from synthgap.experiments.settings import Settings
from synthgap.models import get_family

Block = Annotated[Union[tuple(KINDS.get(name).block for name in KINDS)], Field(discriminator="kind")]  # noqa: UP007


class ExperimentSpec(Settings):
    """A whole spec: its settings (data, model, recipe, resources), its name, seeds and blocks."""

    name: str = "experiment"
    seeds: list[int] = Field([0], min_length=1)
    experiments: list[Block] = Field(min_length=1)

    @model_validator(mode="after")
    def _blocks_fit_the_spec(self) -> ExperimentSpec:
        """Each block checked by its kind against the model family and the data (layer numbers from the family are
        filled in here), rather than after hours of training."""
        family = get_family(self.model.name)
        for number, block in enumerate(self.experiments):
            kind = KINDS.get(block.kind)
            if kind.check is not None:
                try:
                    kind.check(block, self, family)
                except ValueError as exc:
                    raise _BlockError(number, str(exc)) from None
        return self

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> ExperimentSpec:
        """Validate as pydantic does; a `ValidationError` carries synthgap's wording (see the module docstring)."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise _worded(exc, obj) from None


class _BlockError(ValueError):
    """A block that does not fit the rest of the spec: located at the block (pydantic places it at the top)."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(message)
        self.number = number


def _worded(exc: ValidationError, data: Any) -> ValidationError:
    """`exc` with each problem in synthgap's words (`errors.validation_problems`), its location the spec's keys."""
    from synthgap.errors import validation_problems

    problems = []
    for error in exc.errors():
        block_error = (error.get("ctx") or {}).get("error")
        if isinstance(block_error, _BlockError):
            problems.append((("experiments", block_error.number), str(block_error)))
    if not problems:
        problems = validation_problems(exc, ExperimentSpec, data)
    return ValidationError.from_exception_data(
        exc.title,
        [
            {
                "type": PydanticCustomError("synthgap", "{message}", {"message": message}),
                "loc": loc or ("spec",),
                "input": data,
            }
            for loc, message in problems
        ],
    )
