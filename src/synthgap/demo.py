"""`synthgap demo`: the embedded default experiment on CIFAKE, sized for a few minutes on 2 CPU cores.

Students are quarter-width ResNet-18s with the CIFAR stem, trained with the `fast` recipe preset (batch 128, so a
learning rate of 0.1 by its linear rule); every baseline keeps its learning curve, so the demo says how converged
its students are. Real (R) and synthetic (S) baselines, a small layer sweep in both directions (N = 4, 8, 12, 16,
frozen prefix, no stage-2 augmentation so prefix outputs are computed once), a small data-reduction experiment
(16 synthetic layers frozen + the last two trained on 1, 1/4, 1/16 of the real images, against scratch on the
same), then the report. It runs through the same resumable runner as `synthgap run`: rerunning with the same --out
finishes what a killed demo left.

Orchestration (an experiment, then its report), so it lives beside the CLI rather than in a pipeline stage.
"""

from __future__ import annotations

from pathlib import Path

from synthgap.config import validate
from synthgap.experiments.results import ResultRecord
from synthgap.experiments.runner import run_experiment
from synthgap.experiments.spec import ExperimentSpec
from synthgap.report.build import build_report
from synthgap.report.convergence import convergence_line
from synthgap.report.tables import gap_lines

DEMO_N = [4, 8, 12, 16]
DEMO_PER_CLASS = 200
DEMO_EPOCHS = 6
DEMO_WIDTH = 0.25
# Batches of 128, not the preset's 512: 2,000 images a side then give 15 steps an epoch
DEMO_BATCH = 128


def demo_spec(*, data_root: Path | None, per_class: int, epochs: int, width: float, n: list[int]) -> ExperimentSpec:
    return validate(
        ExperimentSpec,
        {
            "name": "demo",
            # 2,500 of the 10,000 real test images: ±1 pp of sampling error for half the evaluation, which each of the
            # 16 runs pays in full however little it trains
            "data": {"data_root": str(data_root) if data_root else None, "per_class": per_class, "test_per_class": 250},
            "model": {"width": width},
            "recipe": {"preset": "fast", "epochs": epochs, "batch_size": DEMO_BATCH},
            "seeds": [0],
            "experiments": [
                {"kind": "baseline"},
                {"kind": "layer_transfer", "n": n, "augmentation": "none", "epochs": max(1, epochs // 2)},
                {
                    "kind": "data_reduction",
                    "fractions": [1, 1 / 4, 1 / 16],
                    "arms": ["transfer", "scratch"],
                    "augmentation": "none",
                },
            ],
        },
    )


def run_demo(
    out: Path,
    *,
    data_root: Path | None = None,
    per_class: int = DEMO_PER_CLASS,
    epochs: int = DEMO_EPOCHS,
    width: float = DEMO_WIDTH,
    n: list[int] | None = None,
    model_cache: Path | None = None,
    progress: bool = True,
) -> list[ResultRecord]:
    spec = demo_spec(data_root=data_root, per_class=per_class, epochs=epochs, width=width, n=n or DEMO_N)
    records = run_experiment(spec, out, model_cache=model_cache, progress=progress)
    build_report(out)
    return records


def demo_summary(records: list[ResultRecord]) -> str:
    lines = [convergence_line(records), "", *gap_lines(records)]
    transfers = sorted((r for r in records if r.kind == "layer_transfer"), key=lambda r: (r.source, r.n_transferred))
    if transfers:
        lines += ["", "| layers 1..N from | rest trained on | N | top-1 (%) |", "|---|---|---|---|"]
        lines += [f"| {r.source} | {r.target} | {r.n_transferred} | {r.top1:.2f} |" for r in transfers]
    reductions = sorted((r for r in records if r.kind == "data_reduction"), key=lambda r: (r.arm, -r.real_fraction))
    if reductions:
        lines += ["", "| arm | real data | top-1 (%) |", "|---|---|---|"]
        lines += [f"| {r.arm} | 1/{r.x:g} | {r.top1:.2f} |" for r in reductions]
    return "\n".join(lines)
