"""Every kind of run, registered explicitly: a spec block, its planner and its executor, one module each."""

from __future__ import annotations

from synthgap.experiments.kinds import (
    augmentation,
    baseline,
    data_reduction,
    generator,
    layer_transfer,
    mixing,
    normalization,
    texture_shape,
)
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runs import Kind, Run, RunContext
from synthgap.registry import Registry

KINDS: Registry[Kind] = Registry("run kind")
for _module in (
    baseline,
    layer_transfer,
    data_reduction,
    normalization,
    augmentation,
    texture_shape,
    generator,
    mixing,
):
    KINDS.add(_module.KIND.name, _module.KIND)


def kind_of_block(block: object) -> Kind:
    return KINDS.get(block.kind)


def execute(run: Run, ctx: RunContext) -> ResultRecord:
    """Run `run` with its kind's executor."""
    for name in KINDS:
        kind = KINDS.get(name)
        if isinstance(run, kind.run_types):
            return kind.execute(run, ctx)
    raise TypeError(f"no executor for {type(run).__name__}")
