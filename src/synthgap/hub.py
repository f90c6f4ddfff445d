"""Resolving a Hugging Face model id to a local snapshot folder, offline-safe, with one clear error when it fails.

The wording of the failure is shared by every command that takes a model id (``--model`` of the generators,
``--clip-model`` of ``synthgap curate``): what was tried (a local folder, the cache, a download), why it failed, and
how to get the files onto this machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: only the cache may be read (read at call time, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache the environment names now (HF_HUB_CACHE, else HF_HOME/hub)."""
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    return Path(cache)


def hub_unavailable_message(
    model: str, exc: Exception, *, option: str = "--model", holds: str = "model_index.json"
) -> str:
    """One line: `model` could not be found locally, in the cache or on the hub; how to fix it.

    `option` is the command-line option that names the model and `holds` the file a local copy must hold."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    reason = reason if len(reason) <= 200 else reason[:200] + "…"
    return (
        f"cannot load model {model!r}: tried the local folder ./{model} and the Hugging Face cache {hub_cache_dir()}"
        f"{' (HF_HUB_OFFLINE is set, no download tried)' if hub_offline() else ', then a download'}: {reason}. "
        f"Fetch it where there is network (`hf download {model}`) and point HF_HOME at that cache, "
        f"or pass {option} /path/to/a/local/copy (a folder holding {holds})"
    )


def snapshot_folder(model: str, allow_patterns: Sequence[str], revision: str | None = None) -> Path:
    """The local snapshot folder of hub model `model` (only the files matching `allow_patterns`); the cache only
    when HF_HUB_OFFLINE is set. Raises what the hub client raises (callers word it with `hub_unavailable_message`)."""
    from huggingface_hub import snapshot_download

    folder = snapshot_download(
        model,
        revision=revision,
        allow_patterns=list(allow_patterns),
        cache_dir=hub_cache_dir(),
        local_files_only=hub_offline(),
    )
    return Path(folder)
