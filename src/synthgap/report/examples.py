"""The report's example-images section: the first training images of each class, real beside synthetic, from the
experiment folder's examples.safetensors (written by the runner)."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError

from synthgap.experiments.examples import EXAMPLES_FILE, read_examples
from synthgap.experiments.results import ResultRecord
from synthgap.report.class_figures import plot_examples
from synthgap.report.classes import PerClassGaps, per_class_gaps
from synthgap.report.tables import by_model

EXAMPLE_ROWS = 12  # the example figure shows at most this many classes


def examples_lines(folder: Path, records: list[ResultRecord], figures: Path | None = None) -> list[str]:
    """The example-images section from `folder`/examples.safetensors (written by the experiment runner); draws
    examples.png into `figures` (default `folder`/figures). Empty without the file; one line saying why when it
    cannot be read."""
    path = folder / EXAMPLES_FILE
    if not path.is_file():
        return []
    heading = ["## Training images", ""]
    try:
        examples = read_examples(path)
    except (OSError, ValueError, SafetensorError) as exc:
        return [*heading, f"{EXAMPLES_FILE} could not be read ({str(exc).splitlines()[0]}), so no pictures here.", ""]
    if not examples.classes:
        return []
    gaps = per_class_gaps(next(iter(by_model(records).values()), []))
    rows, why = example_rows(examples.classes, gaps)
    plot_examples(examples, rows, (figures if figures is not None else folder / "figures") / "examples.png")
    k = examples.per_class
    return [
        *heading,
        f"The first {k} training images of each class, in index order: real on the left, synthetic on the right "
        f"({why}).",
        "",
        "![Training images: real | synthetic](figures/examples.png)",
        "",
    ]


def example_rows(classes: tuple[str, ...], gaps: PerClassGaps | None, limit: int = EXAMPLE_ROWS) -> tuple[list, str]:
    """Which classes the example figure shows (indices into `classes`), and a phrase saying which: all of them up
    to `limit`, else the `limit` with the largest gap R − S when the baselines have per-class results, else the
    first `limit`."""
    if len(classes) <= limit:
        return list(range(len(classes))), f"all {len(classes)} classes"
    if gaps is not None:
        index = {name: i for i, name in enumerate(classes)}
        largest = [index[c.name] for c in gaps.classes if c.name in index][:limit]
        if largest:
            return largest, f"the {len(largest)} of {len(classes)} classes with the largest gap R − S, largest first"
    return list(range(limit)), f"the first {limit} of {len(classes)} classes"
