"""The progress bars of the libraries synthgap drives (diffusers, transformers, datasets, huggingface_hub), off for
one call of synthgap's.

Their bars ("Writing model shards", "Loading weights", "Creating parquet from Arrow format", ...) count a library's
inner steps: on a terminal they interleave with synthgap's own bar, and in a log file each is a stream of carriage
returns. Each library's own switch is used and set back as it was, so a caller who turned a library's bars off (or
on) finds them as they were.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

Switch = tuple[Callable[[], bool], Callable[[], object], Callable[[], object]]  # (are they on, turn off, turn on)


def _switch(library: str) -> Switch:
    """The switch of one library's progress bars (imported only when asked for)."""
    if library == "diffusers":
        from diffusers.utils import logging as diffusers_logging

        return (
            diffusers_logging.is_progress_bar_enabled,
            diffusers_logging.disable_progress_bar,
            diffusers_logging.enable_progress_bar,
        )
    if library == "transformers":
        from transformers.utils import logging as transformers_logging

        return (
            transformers_logging.is_progress_bar_enabled,
            transformers_logging.disable_progress_bar,
            transformers_logging.enable_progress_bar,
        )
    if library == "datasets":
        import datasets

        return (
            lambda: not datasets.are_progress_bars_disabled(),
            datasets.disable_progress_bars,
            datasets.enable_progress_bars,
        )
    if library == "huggingface_hub":
        from huggingface_hub import utils as hub_utils

        return (
            lambda: not hub_utils.are_progress_bars_disabled(),
            hub_utils.disable_progress_bars,
            hub_utils.enable_progress_bars,
        )
    raise ValueError(f"no progress-bar switch for {library!r}")


@contextlib.contextmanager
def library_bars_off(*libraries: str) -> Iterator[None]:
    """Within the block, the progress bars of `libraries` (names as imported: "diffusers", "transformers",
    "datasets", "huggingface_hub") are off; each is turned back on after it only if it was on before."""
    switches = [_switch(library) for library in libraries]
    turned_off = []
    with warnings.catch_warnings():  # an environment variable forcing bars on wins; its warning would be noise
        warnings.simplefilter("ignore")
        for are_on, turn_off, turn_on in switches:
            if are_on():
                turn_off()
                turned_off.append(turn_on)
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for turn_on in turned_off:
                turn_on()
