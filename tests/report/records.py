"""The one way report tests build result records: `make_record(**fields)`, typed as `read_results` would type them."""

from __future__ import annotations

from synthgap.experiments.results import ResultRecord, parse_record

# A finished ResNet-18 baseline on the real side; tests override what they are about.
RECORD_DEFAULTS = {
    "run": "run",
    "kind": "baseline",
    "source": None,
    "target": "cifake:real",
    "n_transferred": 0,
    "frozen": False,
    "real_fraction": 1.0,
    "seed": 0,
    "epochs": 1,
    "top1": 50.0,
    "top5": 90.0,
    "train_images": 100,
    "seconds": 1.0,
    "side": "real",
    "model": "resnet18",
    "num_layers": 18,
}


def make_record(**fields) -> ResultRecord:
    """`parse_record` of the defaults updated with `fields`: the record class follows `kind` (and `ablation`)."""
    return parse_record({**RECORD_DEFAULTS, **fields})
