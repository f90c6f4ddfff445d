"""Every kind of run, registered explicitly: one module each, holding its spec block, planner, executor, record
classes and checks (`Kind`). The spec's block union and the record classes results.jsonl lines parse into are derived
from this registry."""

from __future__ import annotations

from synthgap.experiments.kinds import (
    augmentation,
    baseline,
    curation,
    data_reduction,
    distillation,
    exchange_rate,
    generator,
    layer_transfer,
    mixing,
    normalization,
    stitching,
    texture_shape,
)
from synthgap.experiments.results import ResultRecord, register_records
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
    distillation,
    curation,
    exchange_rate,
    stitching,
):
    KINDS.add(_module.KIND.name, _module.KIND)
    register_records(_module.KIND.records)


def kind_of_block(block: object) -> Kind:
    return KINDS.get(block.kind)


def execute(run: Run, ctx: RunContext) -> ResultRecord:
    """Run `run` with its kind's executor."""
    for name in KINDS:
        kind = KINDS.get(name)
        if isinstance(run, kind.run_types):
            return kind.execute(run, ctx)
    raise TypeError(f"no executor for {type(run).__name__}")
