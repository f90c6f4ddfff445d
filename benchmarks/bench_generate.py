"""Generation overhead: `synthgap generate text2img` / `img2img` vs bare pipeline calls, on the tiny random-weight
pipeline.

- generate_overhead_pct: extra wall time of the project's loop (class list, prompts, per-image seeding, PNG + sha256,
  atomic writes, manifest lines, merged manifest, previews) over the same pipeline calls alone — same batch, steps,
  size, images, per-image generators, same model loading (target <= 5 %). Best of 3 interleaved repeats each.
- generate_loop_overhead_pct: the same cost measured inside one run (wall time outside the pipeline calls over the
  time in them, model loading included), immune to load changing between runs on a shared machine.
- img2img_overhead_pct, img2img_loop_overhead_pct: the same two figures for `synthgap generate img2img` from a small
  real folder (4 classes × 6 random PNGs written by the benchmark, 4 variations each, 32 px, strength 0.75, batch 8)
  against bare AutoPipelineForImage2Image calls on the same batches, prompts, strength, steps, generators and
  preprocessed images (`square(load_rgb(...))`), indexing the folder included on both sides (target <= 5 %).
- generate_cuda_fp16_img_per_s (CUDA only): the project's loop in fp16 at 512 px, 50 steps, batch 8 on the tiny
  pipeline: an upper bound set by the loop, not Stable Diffusion's speed (that needs the real weights; see the
  README section on generation for the estimate). With SYNTHGAP_BENCH_MODEL=<model id or folder> it times that
  model instead.

    python -m benchmarks.bench_generate
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import report
from synthgap.generate.common import GenerationResult, generators
from synthgap.generate.img2img import Img2ImgConfig, Img2ImgGenerator, generate_img2img
from synthgap.generate.models import load_pipeline, prepare_pipeline, resolve_model
from synthgap.generate.plan import Item, batches, text2img_items
from synthgap.generate.text2img import Text2ImgConfig, Text2ImgGenerator, generate_text2img
from synthgap.generate.tiny import save_tiny_text2img

BATCH, STEPS, SIZE, BATCHES = 4, 10, 64, 2
CLASSES = ("cat", "dog")

# img2img: a CIFAKE-like real folder (4 classes × 6 PNGs), 32 px. Both figures are measured as text2img's are (whole
# runs, model loading included on both sides; the in-run figure counts loading as overhead), and that is what sizes
# this run, not the batch size. At 32 px the tiny pipeline makes ~12 images/s on one thread, so 24 images would be
# ~2 s a side: loading (~0.1 s) alone would then be ~5 % of the in-run figure, and the A/B wall-clock ratio swung
# from -8 % to +13 % between identical runs on an idle 2-core host. Four variations per real image (96 images, 12
# batches, ~8 s a side) bring loading down to ~1 % of the in-run figure; the A/B ratio still moves by a few % (4.7
# and 9.0 % in two runs), so the in-run figure is the steady one. The batch size barely matters at 32 px (a call's
# fixed cost is ~3 %: 11.9 img/s bare at batch 4, 12.5 at 8), so it is the img2img default of 8, whose batches cross
# class boundaries (class-major items) and mix prompts within a call, as real runs do.
IMG2IMG_CLASSES, IMG2IMG_PER_CLASS, IMG2IMG_VARIATIONS = ("cat", "dog", "bird", "fish"), 6, 4
IMG2IMG_BATCH, IMG2IMG_SIZE = 8, 32
IMG2IMG_STRENGTH, IMG2IMG_GUIDANCE = 0.75, 2.0


Plan = Callable[[], list[list[Item]]]
Call = Callable[[Any, list[Item]], Any]


def bare_run_seconds(model: Path, kind: str, plan: Plan, call: Call) -> float:
    """Plan the batches, load the pipeline and `call` it on each batch with the same seeds; nothing is written."""
    start = time.perf_counter()
    todo = plan()
    pipe = prepare_pipeline(load_pipeline(resolve_model(str(model)), kind, torch.float32, False), "ddim",
                            torch.device("cpu"))  # fmt: skip
    for batch in todo:
        call(pipe, batch)
    return time.perf_counter() - start


def bare_seconds(model: Path) -> float:
    """Text2img: the same batches, prompts and generators as `project_seconds`."""
    from synthgap.generate.classes import finish_classes

    def plan() -> list[list[Item]]:
        classes = finish_classes([{"name": n} for n in CLASSES], where="bench")
        return batches(text2img_items(classes, BATCH * BATCHES // len(CLASSES), 0), BATCH)

    def call(pipe: Any, batch: list[Item]) -> Any:
        return pipe(prompt=[f"a photo of a {item.cls.name}" for item in batch], num_inference_steps=STEPS,
                    guidance_scale=7.5, height=SIZE, width=SIZE, generator=generators(batch)).images  # fmt: skip

    return bare_run_seconds(model, "text2img", plan, call)


def bare_img2img_seconds(model: Path, real: Path) -> float:
    """Img2img: the same batches, prompts, preprocessed images and generators as `project_img2img_seconds`."""
    from synthgap.data.sources import open_source
    from synthgap.generate.real import load_rgb, source_classes, square, variation_items

    def plan() -> list[list[Item]]:
        index = open_source(f"folder:{real}", "train")
        return batches(variation_items(index, source_classes(index), None, IMG2IMG_VARIATIONS, 0), IMG2IMG_BATCH)

    def call(pipe: Any, batch: list[Item]) -> Any:
        return pipe(
            prompt=[f"a photo of a {item.cls.name}" for item in batch],
            image=[square(load_rgb(item.source), IMG2IMG_SIZE) for item in batch],
            strength=IMG2IMG_STRENGTH,
            num_inference_steps=STEPS,
            guidance_scale=IMG2IMG_GUIDANCE,
            generator=generators(batch),
        ).images

    return bare_run_seconds(model, "img2img", plan, call)


def timed_generator(generator_class: type) -> type:
    """A subclass of a generator that counts the seconds spent inside its pipeline calls."""

    class Timed(generator_class):
        pipeline_seconds = 0.0

        def make_images(self, batch, generators):
            start = time.perf_counter()
            images = super().make_images(batch, generators)
            Timed.pipeline_seconds += time.perf_counter() - start
            return images

    return Timed


def loop_overhead_pct(generator_class: type, config: Any) -> float:
    """Wall time of one run outside its pipeline calls over the time in them, in %."""
    timed = timed_generator(generator_class)
    start = time.perf_counter()
    timed(config)(progress=True)
    total = time.perf_counter() - start
    return 100 * (total / timed.pipeline_seconds - 1)


def text2img_config(model: Path, classes_file: Path, out: Path, **settings) -> Text2ImgConfig:
    settings = {"per_class": BATCH * BATCHES // len(CLASSES), "steps": STEPS, "size": SIZE, "batch_size": BATCH,
                "precision": "fp32", **settings}  # fmt: skip
    return Text2ImgConfig(out=out, model=str(model), classes=str(classes_file), **settings)


def img2img_config(model: Path, real: Path, out: Path) -> Img2ImgConfig:
    return Img2ImgConfig(
        out=out,
        source=f"folder:{real}",
        model=str(model),
        variations=IMG2IMG_VARIATIONS,
        steps=STEPS,
        size=IMG2IMG_SIZE,
        batch_size=IMG2IMG_BATCH,
        strength=IMG2IMG_STRENGTH,
        guidance=IMG2IMG_GUIDANCE,
        precision="fp32",
    )


def project_seconds(model: Path, classes_file: Path, out: Path) -> float:
    """The project's text2img loop on the same images as `bare_seconds`."""
    return project_seconds_at(model, classes_file, out)


def project_img2img_seconds(model: Path, real: Path, out: Path) -> float:
    """The project's img2img loop on the same images as `bare_img2img_seconds`."""
    return run_seconds(generate_img2img, img2img_config(model, real, out))


def cuda_fp16_rate(folder: Path) -> float:
    model = Path(os.environ.get("SYNTHGAP_BENCH_MODEL", folder))
    classes_file = folder.parent / "classes.txt"
    per_class, batch = 16, 8
    warm = dict(per_class=batch // len(CLASSES), size=512, steps=50, batch_size=batch, precision="fp16")
    project_seconds_at(model, classes_file, folder.parent / "cuda-warm", **warm)
    seconds = project_seconds_at(model, classes_file, folder.parent / "cuda", **{**warm, "per_class": per_class})
    return per_class * len(CLASSES) / seconds


def project_seconds_at(model: Path, classes_file: Path, out: Path, **settings) -> float:
    return run_seconds(generate_text2img, text2img_config(model, classes_file, out, **settings))


def run_seconds(generate: Callable[..., GenerationResult], config: Any) -> float:
    start = time.perf_counter()
    result = generate(config, progress=True)
    assert result.written == result.total_images
    return time.perf_counter() - start


def interleaved(bare: Callable[[], float], ours: Callable[[int], float], repeats: int = 3) -> tuple[float, float]:
    """The fastest of `repeats` runs of each side, taken A, B, A, B after one untimed bare run (first calls allocate):
    the least disturbed by other load on a shared machine."""
    bare()
    bare_s, ours_s = [], []
    for repeat in range(repeats):
        bare_s.append(bare())
        ours_s.append(ours(repeat))
    return min(bare_s), min(ours_s)


def report_overhead(
    prefix: str, images: int, seconds: tuple[float, float], loop_pct: Callable[[], float], what: str
) -> None:
    """The figures of one overhead benchmark, as `generate_*` has always reported them."""
    bare, ours = seconds
    report(f"{prefix}_bare_img_per_s", images / bare, f"img/s ({what})")
    report(f"{prefix}_project_img_per_s", images / ours, "img/s")
    report(f"{prefix}_overhead_pct", 100 * (ours / bare - 1), "% (target <= 5)")
    report(f"{prefix}_loop_overhead_pct", loop_pct(), "%")


def write_real_folder(root: Path) -> Path:
    """IMG2IMG_PER_CLASS random PNGs per class, 40 × 48 (not square: the crop is exercised), seeded."""
    generator = torch.Generator().manual_seed(0)
    from PIL import Image

    for name in IMG2IMG_CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(IMG2IMG_PER_CLASS):
            pixels = torch.randint(0, 256, (40, 48, 3), dtype=torch.uint8, generator=generator)
            Image.fromarray(pixels.numpy()).save(root / name / f"{i:02d}.png")
    return root


def text2img_overhead(model: Path, root: Path) -> None:
    classes_file = root / "classes.txt"
    classes_file.write_text("\n".join(CLASSES) + "\n")
    seconds = interleaved(
        lambda: bare_seconds(model), lambda repeat: project_seconds(model, classes_file, root / f"out{repeat}")
    )
    timed = text2img_config(model, classes_file, root / "timed")
    report_overhead("generate", BATCH * BATCHES, seconds, lambda: loop_overhead_pct(Text2ImgGenerator, timed),
                    f"tiny, {SIZE} px, {STEPS} steps, CPU")  # fmt: skip


def img2img_overhead(model: Path, root: Path) -> None:
    real = write_real_folder(root / "real")
    seconds = interleaved(
        lambda: bare_img2img_seconds(model, real),
        lambda repeat: project_img2img_seconds(model, real, root / f"img2img{repeat}"),
    )
    timed = img2img_config(model, real, root / "img2img-timed")
    what = f"tiny, {IMG2IMG_SIZE} px, {STEPS} steps, strength {IMG2IMG_STRENGTH}, batch {IMG2IMG_BATCH}, CPU"
    images = len(IMG2IMG_CLASSES) * IMG2IMG_PER_CLASS * IMG2IMG_VARIATIONS
    report_overhead("img2img", images, seconds, lambda: loop_overhead_pct(Img2ImgGenerator, timed), what)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is steadier on a small shared machine
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = save_tiny_text2img(root / "tiny-sd")
        text2img_overhead(model, root)
        img2img_overhead(model, root)
        torch.set_num_threads(threads)
        if torch.cuda.is_available():
            report("generate_cuda_fp16_img_per_s", cuda_fp16_rate(model), "img/s (512 px, 50 steps, batch 8)")


if __name__ == "__main__":
    main()
