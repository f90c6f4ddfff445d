"""Experiments: specs → typed runs per kind → executors → results.jsonl. Importing any part registers every kind,
so a results line always parses into its kind's record class."""

from synthgap.experiments import kinds  # noqa: F401
