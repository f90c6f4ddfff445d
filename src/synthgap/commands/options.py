"""Options that several commands share, declared once: typer annotations, and the plain-text help settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PLAIN_HELP = {"rich_markup_mode": None, "context_settings": {"help_option_names": ["-h", "--help"]}}

DataRoot = Annotated[
    Path | None,
    typer.Option(help="Folder holding cifake/ (default: $SYNTHGAP_DATA_ROOT).", show_default=False),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
ModelCacheDir = Annotated[
    Path | None, typer.Option(help="Folder of cached source models (default: <cache dir>/models).", show_default=False)
]
NList = Annotated[str | None, typer.Option("--n", help="Layer-transfer N values, e.g. 4,8,16.", show_default=False)]
SetValues = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a spec value (dotted key, YAML value), e.g. recipe.lr=0.05."
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Validate the spec and the data layout; train nothing.")]
RerunChanged = Annotated[
    bool,
    typer.Option(
        "--rerun-changed",
        help="When OUT holds a run of the same name recorded with other settings, move its record to "
        "superseded.jsonl and run it again (default: stop and name the changed settings).",
    ),
]
SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Skip undecodable images (counted) instead of failing.")]
