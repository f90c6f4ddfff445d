"""Expand a spec into runs: plain typed data, named by their settings, each after the runs whose models it needs."""

from __future__ import annotations

from synthgap.errors import SynthgapError
from synthgap.experiments.kinds import kind_of_block
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runs import BaselineRun, Run
from synthgap.experiments.spec import ExperimentSpec


def plan(spec: ExperimentSpec) -> list[Run]:
    """Every run of the spec once, in an order where each run comes after the runs it needs (runs a block needs
    but no block plans are added). Baselines come first, then the rest in spec order."""
    planned: list[Run] = []
    for block in spec.experiments:
        seeds = block_seeds(block, spec)
        planned += kind_of_block(block).plan(block, seeds, spec)
    needed = [need for run in planned for need in run.needs()]
    runs = _unique(planned + needed)
    baselines = [run for run in runs if isinstance(run, BaselineRun)]
    return dependency_order(baselines + [run for run in runs if not isinstance(run, BaselineRun)])


def block_seeds(block, spec: ExperimentSpec) -> list[int]:
    """The seeds a block runs: its own, else the spec's."""
    return block.seeds if block.seeds is not None else spec.seeds


def follow_ups(spec: ExperimentSpec, records: list[ResultRecord]) -> list[Run]:
    """The runs that blocks choosing their runs from results (adaptive sweeps) have so far, and their next round."""
    runs: list[Run] = []
    for block in spec.experiments:
        kind = kind_of_block(block)
        if kind.follow_up is not None:
            seeds = block_seeds(block, spec)
            runs += kind.follow_up(block, seeds, spec, records)
    return runs


def dependency_order(runs: list[Run]) -> list[Run]:
    """`runs` reordered as little as possible so that every run follows the runs it needs."""
    by_name = {run.name: run for run in runs}
    done: set[str] = set()
    ordered: list[Run] = []

    def visit(run: Run, path: tuple[str, ...]) -> None:
        if run.name in done:
            return
        if run.name in path:
            raise SynthgapError(f"runs need each other in a cycle: {' → '.join((*path, run.name))}")
        for need in run.needs():
            visit(by_name[need.name], (*path, run.name))
        done.add(run.name)
        ordered.append(run)

    for run in runs:
        visit(run, ())
    return ordered


def _unique(runs: list[Run]) -> list[Run]:
    seen: dict[str, Run] = {}
    for run in runs:
        if run.name in seen and seen[run.name] != run:
            raise SynthgapError(f"two different runs would both be named {run.name!r}")
        seen.setdefault(run.name, run)
    return list(seen.values())
