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


SIDE_DATA = {"real": "cifake:real", "synthetic": "cifake:synthetic"}


def transfer_record(n: int, top1: float, *, source_side: str = "synthetic", **fields) -> ResultRecord:
    """A layer-transfer record: layers 1..n (frozen) from the `source_side` baseline, the rest trained on the other
    side (synthetic→real by default); `fields` override anything, e.g. the data names or the run name."""
    side = "real" if source_side == "synthetic" else "synthetic"
    transfer = {
        "kind": "layer_transfer",
        "source": SIDE_DATA[source_side],
        "source_side": source_side,
        "target": SIDE_DATA[side],
        "side": side,
        "n_transferred": n,
        "frozen": True,
        "top1": top1,
    }
    return make_record(**{**transfer, **fields})
