"""Adaptive layer sweeps (n: auto): bisection over N finds where the recovered share of the gap crosses each level
with a handful of students instead of one per N, and a resumed experiment continues the same search."""

import itertools

import pytest

from synthgap.config import validate
from synthgap.errors import SynthgapError
from synthgap.experiments import backends as backends_module
from synthgap.experiments.kinds.layer_transfer import TransferRecord, adaptive_students_bound, bisect_levels
from synthgap.experiments.results import BaselineRecord, read_results
from synthgap.experiments.runner import run_experiment
from synthgap.experiments.runs import BaselineRun
from synthgap.experiments.spec import ExperimentSpec


def planted(n: int) -> float:
    return 1 - n / 18  # the recovered share falls linearly: below 50 % from N = 10 on, below 80 % from N = 4 on


def test_bisection_finds_a_planted_crossing_with_log2_students():
    shares: dict[int, float] = {}
    rounds = 0
    while True:
        step = bisect_levels(shares, 18, [0.5], budget=None)
        if not step.next_n:
            break
        shares.update({n: planted(n) for n in step.next_n})
        rounds += 1
    assert step.crossings == {0.5: 10} and len(shares) == rounds == 4  # ⌈log2 18⌉ = 5 at most


def test_several_levels_share_students_and_the_budget_caps_them():
    shares: dict[int, float] = {}
    while (step := bisect_levels(shares, 18, [0.5, 0.8], budget=None)).next_n:
        shares.update({n: planted(n) for n in step.next_n})
    assert step.crossings == {0.8: 4, 0.5: 10} and len(shares) <= 10
    capped = bisect_levels({9: planted(9), 13: planted(13)}, 18, [0.5, 0.8], budget=3)
    assert len(capped.next_n) == 1  # two measured, one more allowed


def test_n_auto_only_searches_the_synthetic_to_real_students():
    with pytest.raises(SynthgapError, match="n: auto searches the synthetic→real students"):
        validate(ExperimentSpec, {"experiments": [{"kind": "layer_transfer", "n": "auto"}]})
    with pytest.raises(SynthgapError, match="levels and budget go with n: auto"):
        validate(ExperimentSpec, {"experiments": [{"kind": "layer_transfer", "n": [4], "levels": [0.5]}]})


def fake_execute(run, ctx, fingerprint):
    """Planted results instead of training: R 80 %, S 40 %, the synthetic→real student 40 + 40 × share(N)."""
    common = {
        "run": run.name,
        "seed": run.seed,
        "epochs": 1,
        "top5": 100.0,
        "train_images": 1,
        "seconds": 0.0,
        "fingerprint": fingerprint,
        "test": "t",
        "frozen": False,
        "n_transferred": 0,
        "source": None,
    }
    if isinstance(run, BaselineRun):
        top1 = 80.0 if run.side == "real" else 40.0
        return BaselineRecord(**common | {"target": run.side, "side": run.side, "top1": top1})
    fields = common | {"n_transferred": run.n, "frozen": True, "source": "s", "source_side": "synthetic"}
    return TransferRecord(
        **fields | {"target": "r", "side": "real", "top1": 40 + 40 * planted(run.n), "chosen": run.chosen}
    )


def test_an_adaptive_sweep_runs_round_by_round_and_resumes(cifake_root, tmp_path, model_cache, monkeypatch):
    monkeypatch.setattr(backends_module, "execute_run", fake_execute)
    spec = validate(
        ExperimentSpec,
        {
            "data": {"data_root": str(cifake_root)},
            "experiments": [
                {
                    "kind": "layer_transfer",
                    "directions": ["synthetic_to_real"],
                    "n": "auto",
                    "levels": [0.5],
                    "augmentation": "none",
                }
            ],
        },
    )
    records = run_experiment(spec, tmp_path / "out", model_cache=model_cache, progress=False)
    transfers = [r for r in records if r.kind == "layer_transfer"]
    assert [r.n_transferred for r in transfers] == [9, 13, 11, 10]  # one bisection step per round
    assert transfers[0].chosen == "bisection for 50% of the gap: crossing in N 0..18"
    assert transfers[-1].chosen == "bisection for 50% of the gap: crossing in N 9..11"
    # resumed (or rerun): the recorded students are part of the plan, nothing runs again, nothing is added
    monkeypatch.setattr(backends_module, "execute_run", lambda *a: pytest.fail("ran again"))
    assert len(run_experiment(spec, tmp_path / "out", model_cache=model_cache, progress=False)) == 6
    assert len(read_results(tmp_path / "out")) == 6


def test_a_fixed_sweep_asks_for_no_follow_up_rounds():
    from synthgap.experiments.plan import follow_ups

    spec = validate(ExperimentSpec, {"experiments": [{"kind": "layer_transfer", "n": [4, 8]}]})
    records = [
        fake_execute(run, None, "f")
        for run in [BaselineRun("baseline-real-s0", 0, "real"), BaselineRun("baseline-synthetic-s0", 0, "synthetic")]
    ]
    assert follow_ups(spec, records) == []  # R > S here: an adaptive block would ask for students


def students_trained(num_layers: int, levels: list[float], budget: int | None, crossings: list[int]) -> int:
    """Students a bisection trains per seed when the share steps down at each of `crossings` (worst cases come
    from where the crossings lie)."""

    def share(n: int) -> float:
        return 1 - sum(n >= c for c in crossings) / (len(crossings) + 1)

    shares: dict[int, float] = {}
    while (step := bisect_levels(shares, num_layers, levels, budget)).next_n:
        shares.update({n: share(n) for n in step.next_n})
    return len(shares)


CASES = [(18, [0.5], None), (18, [0.75, 0.5, 0.25], None), (7, [0.8, 0.6, 0.4, 0.2], None), (18, [0.75, 0.5], 3)]


@pytest.mark.parametrize(("num_layers", "levels", "budget"), CASES)
def test_the_dry_run_bound_holds_wherever_the_crossings_are(num_layers, levels, budget):
    bound = adaptive_students_bound(len(levels), num_layers, budget)
    worst = max(
        students_trained(num_layers, levels, budget, sorted(crossings))
        for crossings in itertools.combinations_with_replacement(range(1, num_layers + 1), len(levels))
    )
    assert worst <= bound


def test_the_dry_run_says_how_many_adaptive_students_at_most(cifake_root, tmp_path):
    from synthgap.api import dry_run

    spec = {
        "data": {"data_root": str(cifake_root)},
        "seeds": [0, 1],
        "experiments": [
            {"kind": "baseline"},
            {"kind": "layer_transfer", "directions": ["synthetic_to_real"], "n": "auto", "levels": [0.75, 0.5, 0.25]},
            {
                "kind": "layer_transfer",
                "directions": ["synthetic_to_real"],
                "n": "auto",
                "budget": 4,
                "seeds": [0],
                "augmentation": "none",
            },
        ],
    }
    report = dry_run(spec, tmp_path / "out").splitlines()
    assert "  runs: 4 (baseline 4); 0 already finished in " + str(tmp_path / "out") in report
    first, second = [line for line in report if line.startswith("  adaptive block")]
    assert first.startswith(
        "  adaptive block 2 (layer_transfer, n: auto): at most 15 synthetic→real students per seed, 30 in all "
        "(2 seed(s)) — an upper bound: 3 level(s) × ⌈log2 18⌉ = 5 bisection steps"
    )
    assert second.startswith(
        "  adaptive block 3 (layer_transfer, n: auto): at most 4 synthetic→real students per seed, 4 in all (1 seed(s))"
    )
    assert "budget 4" in second
