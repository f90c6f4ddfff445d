"""Every registered kind carries all of itself: its block (named like the kind), the spec accepts it, its record
classes parse results lines, and some report section reports its records."""

from __future__ import annotations

import pytest

from synthgap.experiments.kinds import KINDS
from synthgap.experiments.results import RECORD_CLASSES, parse_record, record_key
from synthgap.experiments.spec import Block, ExperimentSpec
from synthgap.report.build import build_report  # noqa: F401  (registers every section)
from synthgap.report.sections import reported_kinds

REQUIRED = {"generator": {"sources": {"sd": "cifake:synthetic"}}}  # blocks without a usable default


@pytest.mark.parametrize("name", list(KINDS))
def test_a_kind_carries_its_block_records_and_report_section(name):
    kind = KINDS.get(name)
    assert kind.block.model_fields["kind"].annotation.__args__ == (name,)
    assert kind.block in Block.__origin__.__args__  # the spec's union is derived from the registry
    spec = ExperimentSpec.model_validate({"experiments": [{"kind": name, **REQUIRED.get(name, {})}]})
    assert type(spec.experiments[0]) is kind.block
    assert kind.records, f"{name} declares no record class"
    for cls in kind.records:
        key = record_key(cls)
        assert RECORD_CLASSES[key] is cls
        assert key in reported_kinds(), f"no report section reports {key}"


def test_a_line_of_each_kind_parses_into_its_class():
    common = {
        "run": "r",
        "target": "t",
        "seed": 0,
        "epochs": 1,
        "top1": 1.0,
        "top5": 2.0,
        "train_images": 1,
        "seconds": 1.0,
    }
    for key, cls in RECORD_CLASSES.items():
        kind, _, ablation = key.partition(":")
        line = {**common, "kind": kind, **({"ablation": ablation} if ablation else {})}
        record = parse_record(line)
        assert type(record) is cls and record.source is None and record.n_transferred == 0  # no transfer fields
