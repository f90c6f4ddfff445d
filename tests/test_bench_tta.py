"""benchmarks/bench_tta.py: every test-time policy measured on the student a record describes, and a refusal when
the cached student is not that one."""

from __future__ import annotations

import json

import pytest
from benchmarks.bench_tta import policies_of

from synthgap.experiments.results import RESULTS_FILE, read_results
from synthgap.experiments.runner import run_experiment
from synthgap.train.tta import TTA_VIEWS
from tests.specs import tiny_spec


@pytest.fixture
def recorded(cifake_root, model_cache, tmp_path):
    spec = tiny_spec(cifake_root, [{"kind": "baseline", "sides": ["real"]}], recipe={"tta": "flip"})
    out = tmp_path / "out"
    run_experiment(spec, out, model_cache=model_cache, progress=False)
    return out


def test_every_policy_is_measured_on_the_recorded_student(recorded, model_cache):
    rows = policies_of(recorded, model_cache)
    assert [row["tta"] for row in rows] == list(TTA_VIEWS)
    (record,) = read_results(recorded)
    flip = next(row for row in rows if row["tta"] == "flip")
    assert flip["top1"] == round(record.top1, 2) and flip["run"] == record.run


def test_a_record_the_cached_student_does_not_reproduce_stops_the_measurement(recorded, model_cache):
    path = recorded / RESULTS_FILE
    record = json.loads(path.read_text())
    record["top1"] = 0.0 if record["top1"] else 100.0  # the run tested at a value it does not have
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(SystemExit, match="not the recorded student"):
        policies_of(recorded, model_cache)
