"""Library progress bars stay out of synthgap's output: saving the tiny models draws none, and each library's own
setting is back as it was after a synthgap call."""

from __future__ import annotations

import pytest

from synthgap.generate.quiet import library_bars_off
from synthgap.generate.tiny import save_tiny_clip, save_tiny_text2img, save_tiny_unclip

LIBRARIES = ("diffusers", "transformers", "datasets", "huggingface_hub")


def bars_on() -> dict[str, bool]:
    import datasets
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as transformers_logging

    return {
        "diffusers": diffusers_logging.is_progress_bar_enabled(),
        "transformers": transformers_logging.is_progress_bar_enabled(),
        "datasets": not datasets.are_progress_bars_disabled(),
        "huggingface_hub": not hub_utils.are_progress_bars_disabled(),
    }


@pytest.mark.parametrize("save", [save_tiny_text2img, save_tiny_unclip, save_tiny_clip])
def test_saving_a_tiny_model_draws_no_library_progress_bar(save, tmp_path, capfd):
    before = bars_on()
    save(tmp_path / "model")
    err = capfd.readouterr().err
    assert "Writing model shards" not in err and "it/s" not in err and "\r" not in err, err
    assert bars_on() == before


def test_library_bars_off_restores_each_library_as_it_was():
    from transformers.utils import logging as transformers_logging

    before = bars_on()
    with library_bars_off(*LIBRARIES):
        assert not any(bars_on().values())
    assert bars_on() == before
    transformers_logging.disable_progress_bar()  # a caller who turned a library's bars off keeps them off
    try:
        with library_bars_off("transformers", "diffusers"):
            pass
        assert not transformers_logging.is_progress_bar_enabled()
    finally:
        transformers_logging.enable_progress_bar()
    with pytest.raises(ValueError, match="no progress-bar switch for 'tqdm'"):
        with library_bars_off("tqdm"):
            pass
