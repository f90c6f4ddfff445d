"""The mixing ablation: mixed training sets keep their size, stay stratified and nest."""

import torch

from synthgap.experiments.kinds.mixing import MixingRun, mixed_training_set
from synthgap.experiments.plan import plan
from synthgap.experiments.runs import RunContext
from synthgap.experiments.store import DataStore, ModelCache
from tests.specs import tiny_spec


def test_mixed_sets_keep_their_size_and_nest(cifake_root, tmp_path, monkeypatch):
    spec = tiny_spec(
        cifake_root,
        [{"kind": "mixing", "synthetic_shares": [0, 1 / 3, 1]}],
        name="ablations",
        data={"data_root": str(cifake_root), "per_class": 3},
    )
    ctx = RunContext(
        spec,
        DataStore(spec, progress=False),
        ModelCache(tmp_path / "models"),
        tmp_path / "out",
        torch.device("cpu"),
        progress=False,
    )
    runs = [run for run in plan(spec) if isinstance(run, MixingRun) and run.mode == "share"]
    sizes = [mixed_training_set(run, ctx)[1:] for run in runs]
    assert sizes == [(30, 0), (20, 10), (0, 30)]
    mixed, _, _ = mixed_training_set(runs[1], ctx)
    assert torch.bincount(mixed.labels).tolist() == [3] * 10  # still stratified: 2 real + 1 synthetic per class
    assert mixed.key and mixed.key != mixed_training_set(runs[0], ctx)[0].key
