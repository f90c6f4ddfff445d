"""Result records parse into their kind's typed class, also from lines older versions wrote."""

import pytest

from synthgap.errors import SynthgapError
from synthgap.experiments.kinds.data_reduction import ReductionRecord
from synthgap.experiments.kinds.layer_transfer import TransferRecord
from synthgap.experiments.kinds.normalization import NormalizationRecord
from synthgap.experiments.results import parse_record, read_results

COMMON = {"seed": 0, "epochs": 1, "top1": 10.0, "top5": 50.0, "train_images": 20, "seconds": 1.0, "frozen": True}


def test_lines_parse_into_their_kinds_class():
    transfer = parse_record(
        {
            **COMMON,
            "run": "t",
            "kind": "layer_transfer",
            "source": "a",
            "target": "b",
            "n_transferred": 4,
            "side": "real",
            "source_side": "synthetic",
            "rest": "finetune",
        }
    )
    assert isinstance(transfer, TransferRecord) and transfer.rest == "finetune"
    norm = parse_record(
        {
            **COMMON,
            "run": "n",
            "kind": "ablation",
            "ablation": "normalization",
            "source": None,
            "target": "b",
            "n_transferred": 0,
            "normalization": "real",
            "adabn": True,
        }
    )
    assert isinstance(norm, NormalizationRecord) and norm.adabn and norm.normalization == "real"


def test_older_lines_get_the_source_side_back_where_it_is_certain():
    old_transfer = {
        **COMMON,
        "run": "t",
        "kind": "layer_transfer",
        "source": "cifake:real",
        "target": "cifake:fake",
        "n_transferred": 4,
        "side": "synthetic",
    }
    assert parse_record(old_transfer).source_side == "real"
    old_reduction = {
        **COMMON,
        "run": "r",
        "kind": "data_reduction",
        "source": "cifake:synthetic",
        "target": "cifake:real",
        "n_transferred": 16,
        "side": "real",
        "arm": "transfer",
    }
    record = parse_record(old_reduction)
    assert isinstance(record, ReductionRecord) and record.source_side == "synthetic"
    no_side = {**old_transfer, "side": None}
    assert parse_record(no_side).source_side is None  # not certain: left unknown


@pytest.mark.parametrize(
    "line",
    [
        '{"run": "x"}',
        '{"run": "x", "kind": "baseline", "target": "t", "seed": 0, '
        '"epochs": 1, "top1": "abc", "top5": 1, "train_images": 1, "seconds": 1}',
    ],
)
def test_a_results_line_of_the_wrong_shape_is_one_error_naming_its_line(tmp_path, line):
    (tmp_path / "results.jsonl").write_text("\n" + line + "\n")
    with pytest.raises(SynthgapError, match=r"results\.jsonl, line 2: "):
        read_results(tmp_path)


def test_a_line_from_before_source_side_gets_it_back_from_its_kind():
    common = {
        "run": "x",
        "seed": 0,
        "top1": 50.0,
        "top5": 90.0,
        "epochs": 1,
        "train_images": 10,
        "seconds": 1.0,
        "source": "cifake:synthetic",
        "n_transferred": 8,
        "frozen": True,
    }
    transfer = parse_record({**common, "kind": "layer_transfer", "side": "real", "target": "cifake:real"})
    assert transfer.source_side == "synthetic"
    reverse = parse_record({**common, "kind": "layer_transfer", "side": "synthetic", "target": "cifake:synthetic"})
    assert reverse.source_side == "real"
    reduction = parse_record({**common, "kind": "data_reduction", "side": "real", "target": "cifake:real", "x": 8})
    assert reduction.source_side == "synthetic"
    recorded = parse_record(
        {**common, "kind": "layer_transfer", "side": "real", "target": "cifake:real", "source_side": None}
    )
    assert recorded.source_side is None  # a line that says it leaves it as it says
