"""What executing one run means, wherever it executes: its kind's executor, then its record (with the run's
fingerprint and arithmetic) written into the run's folder. The runner and every backend call this; neither knows the
other."""

from __future__ import annotations

from synthgap.experiments import kinds
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runs import Run, RunContext
from synthgap.io import atomic_write_json
from synthgap.train.compute import processor_kind

RECORD_FILE = "record.json"


def execute_run(run: Run, ctx: RunContext, fingerprint: str) -> ResultRecord:
    """Execute one run and write its record into its run folder; only the driver appends records to
    results.jsonl."""
    # the processor kind is told, not hashed: a model cache shared by different nodes stays shared, and a report
    # that mixes kinds says so (report/sanity.py)
    compute = {**ctx.compute_identity, "processor": processor_kind(ctx.compute.device)}
    record = kinds.execute(run, ctx).model_copy(update={"fingerprint": fingerprint, "compute": compute})
    atomic_write_json(ctx.run_dir(run) / RECORD_FILE, record.model_dump(mode="json"))
    return record
