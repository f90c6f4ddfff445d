"""A real SIGKILL of `synthgap generate img2img` and `synthgap generate adapt` mid-run, then the same command again:
the img2img set is byte-identical to an uninterrupted run's (no image lost or duplicated), and the resumed LoRA's
weights are byte-identical to an uninterrupted training's, wherever in an epoch's save the kill lands."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from synthgap.generate.adapt import AdaptConfig, adapt
from synthgap.generate.img2img import generate_img2img
from synthgap.generate.lora import ADAPT_RESULT, LORA_WEIGHTS
from synthgap.generate.output import MANIFEST, PARTS
from tests.generate import test_adapt
from tests.generate.test_adapt import adapt_config
from tests.generate.test_img2img import img2img_config
from tests.generate.test_resume_kill import kill_mid_run, png_count
from tests.generate.tiny_pipelines import png_files

pytestmark = pytest.mark.slow
real_two_classes = test_adapt.real_two_classes  # the fixture: cat and dog, 4 smooth images each, dog's nested


def cli_args(command: str, config, names: tuple[str, ...]) -> list[str]:
    """`generate <command>` with the given fields of `config` as options: the command the in-process rerun repeats
    (its settings file would refuse any other)."""
    values = asdict(config)
    options = [[f"--{name.replace('_', '-')}", str(values[name])] for name in ("out", "source", "model", *names)]
    return ["generate", command, *[word for option in options for word in option], "--quiet"]


# -- img2img ---------------------------------------------------------------------------------------------------------

IMG2IMG_KILL_AFTER = 6  # images on disk before the kill (of 15)


def test_img2img_sigkill_mid_run_then_rerun_completes_the_exact_set(tiny_text2img, image_folder, tmp_path):
    source = f"folder:{image_folder}"  # nested: ant/sub/a2.png
    whole = tmp_path / "whole"
    generate_img2img(img2img_config(tiny_text2img, whole, source, variations=3), progress=False)
    total = len(png_files(whole))
    assert total == 15  # 2 + 1 + 2 real images (per class 2), 3 variations each: 5 batches of 3

    out = tmp_path / "gen"
    config = img2img_config(tiny_text2img, out, source, variations=3)
    args = cli_args("img2img", config, ("per_class", "variations", "strength", "size", "steps", "batch_size", "seed"))
    kill_mid_run(args, out, lambda: png_count(out) >= IMG2IMG_KILL_AFTER, lambda: png_count(out) == total)
    partial = png_files(out)
    assert IMG2IMG_KILL_AFTER <= len(partial) < total and not (out / MANIFEST).exists()
    assert all(whole_bytes == partial[file] for file, whole_bytes in png_files(whole).items() if file in partial)

    rerun = generate_img2img(config, progress=False)
    assert (rerun.written, rerun.already_done) == (total - len(partial), len(partial))
    assert png_files(out) == png_files(whole)  # byte-identical: nothing lost, nothing extra
    assert (out / MANIFEST).read_text() == (whole / MANIFEST).read_text()  # sources, variations, sha256s
    part_files = [json.loads(line)["file"] for line in (out / PARTS / "0-of-1.jsonl").read_text().splitlines()]
    # no line twice; a kill between an image's rename and its line loses that one line, which the manifest rebuilds
    assert len(part_files) == len(set(part_files)) >= total - 1 and set(part_files) <= set(png_files(whole))
    assert not list(out.glob("*/.*.tmp"))


# -- adapt -----------------------------------------------------------------------------------------------------------

ADAPT = {"epochs": 3, "batch_size": 2}  # 8 real images: 4 steps an epoch, 12 in all; a state saved after each epoch
ADAPT_OPTIONS = ("size", "epochs", "lr", "batch_size", "rank", "seed")


@pytest.fixture(scope="module")
def whole_lora(tiny_text2img, real_two_classes, tmp_path_factory) -> bytes:
    """The weights of the same training run uninterrupted, in this process."""
    out = tmp_path_factory.mktemp("whole") / "lora"
    assert adapt(adapt_config(tiny_text2img, out, real_two_classes, **ADAPT), progress=False).steps_run == 12
    return (out / LORA_WEIGHTS).read_bytes()


def saved_step(out: Path) -> int:
    """The step of the last saved state (0: none yet)."""
    try:
        return json.loads((out / "state" / "state.json").read_text())["step"]
    except (OSError, ValueError):  # not written yet (written atomically, so never torn)
        return 0


def resume_and_compare(config: AdaptConfig, whole_lora: bytes) -> int:
    """Rerun the killed training in this process; its weights must be the uninterrupted run's. Returns the step
    the rerun resumed from."""
    out = Path(config.out)
    assert not (out / LORA_WEIGHTS).exists() and not (out / ADAPT_RESULT).exists()
    resumed = adapt(config, progress=False)
    assert (out / LORA_WEIGHTS).read_bytes() == whole_lora
    assert json.loads((out / ADAPT_RESULT).read_text())["real_images_used"] == 8
    assert adapt(config, progress=False).steps_run == 0  # done: a third run trains nothing
    return 12 - resumed.steps_run


def test_adapt_sigkill_after_a_saved_epoch_then_rerun_resumes_to_the_same_weights(
    tiny_text2img, real_two_classes, whole_lora, tmp_path
):
    out = tmp_path / "lora"
    config = adapt_config(tiny_text2img, out, real_two_classes, **ADAPT)

    def finished() -> bool:
        return (out / LORA_WEIGHTS).exists() or saved_step(out) == 12

    kill_mid_run(cli_args("adapt", config, ADAPT_OPTIONS), out, lambda: saved_step(out) >= 4, finished)
    step = saved_step(out)
    assert step in (4, 8)  # killed in epoch 2 (or 3), after epoch 1's state was saved
    assert resume_and_compare(config, whole_lora) == step


# A kill inside the second epoch's save, made certain by the process killing itself there (a real SIGKILL): after
# the new adapter.safetensors is written but before optimizer.pt and state.json, and right after state.json.
KILL_INSIDE_SAVE = """
import os, signal, sys
from pathlib import Path
import synthgap.generate.adapt as adapt
from synthgap.cli import main

FUNCTION, NAME, AFTER = {function!r}, {name!r}, {after!r}
real, calls = getattr(adapt, FUNCTION), []

def cut(path, *args, **kwargs):
    if Path(path).name.startswith(NAME):
        calls.append(path)
    second = len(calls) == 2 and Path(path).name.startswith(NAME)
    if second and not AFTER:
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(path, *args, **kwargs)
    if second and AFTER:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(adapt, FUNCTION, cut)
sys.argv = ["synthgap"] + sys.argv[1:]
main()
"""


@pytest.mark.parametrize(
    ("function", "name", "after", "resumed_from"),
    [
        ("atomic_path", "optimizer.pt", False, 4),  # the new adapter written, state.json still epoch 1's
        ("atomic_write_json", "state.json", True, 8),  # epoch 2's state.json written, the save not yet over
    ],
    ids=["before-optimizer", "after-state-json"],
)
def test_adapt_sigkill_inside_a_save_then_rerun_resumes_to_the_same_weights(
    function, name, after, resumed_from, tiny_text2img, real_two_classes, whole_lora, tmp_path
):
    out = tmp_path / "lora"
    config = adapt_config(tiny_text2img, out, real_two_classes, **ADAPT)
    code = KILL_INSIDE_SAVE.format(function=function, name=name, after=after)
    kill_mid_run(cli_args("adapt", config, ADAPT_OPTIONS), out, lambda: False, lambda: False, code=code, attempts=1)
    assert resume_and_compare(config, whole_lora) == resumed_from
