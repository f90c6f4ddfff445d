"""Where synthgap keeps what it decodes and derives (`SYNTHGAP_CACHE_DIR`, else ~/.cache/synthgap)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SYNTHGAP_CACHE_DIR"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "synthgap")
