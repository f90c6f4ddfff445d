"""What executing one run means, wherever it executes: its kind's executor, then its record (with the run's
fingerprint and arithmetic) written into the run's folder. The runner and every backend call this; neither knows the
other."""

from __future__ import annotations

import json
from pathlib import Path

from synthgap.experiments import kinds
from synthgap.experiments.results import ResultRecord, parse_record
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


def committed_record(run_dir: Path, fingerprint: str) -> ResultRecord | None:
    """The record a run wrote into its folder before the driver could append it (a kill in between), if it is
    this run's with these settings."""
    path = run_dir / RECORD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return parse_record(data) if data.get("fingerprint") == fingerprint else None
