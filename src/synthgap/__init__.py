"""synthgap: measure where the gap between synthetic-trained and real-trained image classifiers lives.

Stages (data flows left to right): generate → data → models → train → experiments → report.

The Python API (`synthgap.api`, walkthrough in docs/api.md): `run`, `train`, `report`, `analyze`, `load_results`,
`load_analysis`. Importing the package is cheap: torch and pandas are imported on a function's first call.
"""

import sys
import types

from synthgap.api import analyze, load_analysis, load_results, report, run, train

__version__ = "0.1.0"
__all__ = ["analyze", "load_analysis", "load_results", "report", "run", "train"]


class _Package(types.ModuleType):
    """`synthgap.train` and `synthgap.report` are API functions and also subpackages. Importing a subpackage sets
    it as an attribute of this package; here that leaves the function in place. The subpackages stay importable
    as always (`from synthgap.train.loop import fit`, `from synthgap.report import build`)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in __all__ and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
