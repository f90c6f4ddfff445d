"""The records behind the README's measured numbers (results/<study>/): each folder still loads with today's code,
every record belongs to a run its spec plans with the settings it names, the report builds from it, and the index
lists it. A change that made them unreadable or unresumable would also strand a study resumed from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthgap.experiments.plan import plan
from synthgap.experiments.results import BaselineRecord, read_results
from synthgap.report.build import report_markdown
from synthgap.specload import load_spec

RESULTS = Path(__file__).resolve().parents[1] / "results"
FOLDERS = sorted(p for p in RESULTS.iterdir() if p.is_dir())


def test_there_are_reference_folders_and_the_index_names_each():
    assert FOLDERS, f"no study folders in {RESULTS}"
    index = (RESULTS / "README.md").read_text()
    for folder in FOLDERS:
        assert f"`{folder.name}/`" in index, f"results/README.md does not describe {folder.name}"


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_records_belong_to_the_runs_their_spec_plans(folder: Path):
    spec = load_spec(folder / "spec.yaml")
    records = read_results(folder)
    assert records, f"{folder.name}: no records"
    planned = {run.name for run in plan(spec)}
    recipe = spec.recipe.model_dump(mode="json")  # the preset resolved, as a baseline records it
    for record in records:
        assert record.run in planned, f"{folder.name}: {record.run} is not a run of its spec.yaml"
        assert record.fingerprint and record.compute and record.compute.get("processor"), record.run
        if isinstance(record, BaselineRecord):
            assert record.recipe == recipe, f"{folder.name}: {record.run} was trained with another recipe"
            assert record.curve, f"{folder.name}: {record.run} keeps no learning curve"


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_the_report_builds_from_the_records(folder: Path, tmp_path: Path):
    markdown = report_markdown(folder, read_results(folder), tmp_path / "figures", analysis=[])
    assert "## All runs" in markdown and "Convergence of the baselines" in markdown
