"""`python -m synthgap`: the command line (how a multi-process training launches its processes)."""

from synthgap.cli import main

main()
