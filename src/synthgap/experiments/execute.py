"""What executing one run means, wherever it executes: its kind's executor, then its record (with the run's
fingerprint and arithmetic) written into the run's folder. The runner and every backend call this; neither knows the
other."""

from __future__ import annotations

from synthgap.experiments import kinds
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runs import Run, RunContext
from synthgap.io import atomic_write_json

RECORD_FILE = "record.json"


def execute_run(run: Run, ctx: RunContext, fingerprint: str) -> ResultRecord:
    """Execute one run and write its record into its run folder; only the driver appends records to
    results.jsonl."""
    compute = ctx.compute.record(ctx.spec.recipe.precision)
    record = kinds.execute(run, ctx).model_copy(update={"fingerprint": fingerprint, "compute": compute})
    atomic_write_json(ctx.run_dir(run) / RECORD_FILE, record.model_dump(mode="json"))
    return record
