"""synthgap: measure where the gap between synthetic-trained and real-trained image classifiers lives.

Stages (data flows left to right): generate → data → models → train → experiments → report.
"""

__version__ = "0.1.0"
