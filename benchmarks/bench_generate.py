"""Generation overhead: `synthgap generate text2img` vs bare pipeline calls, on the tiny random-weight pipeline.

- generate_overhead_pct: extra wall time of the project's loop (class list, prompts, per-image seeding, PNG + sha256,
  atomic writes, manifest lines, merged manifest, previews) over the same pipeline calls alone — same batch, steps,
  size, images, per-image generators, same model loading (target <= 5 %). Best of 3 interleaved repeats each.
- generate_loop_overhead_pct: the same cost measured inside one run (wall time outside the pipeline calls over the
  time in them, model loading included), immune to load changing between runs on a shared machine.
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
from pathlib import Path

import torch

from benchmarks.common import report
from synthgap.generate.common import generators
from synthgap.generate.models import load_pipeline, prepare_pipeline, resolve_model
from synthgap.generate.plan import batches, text2img_items
from synthgap.generate.text2img import Text2ImgConfig, Text2ImgGenerator, generate_text2img
from synthgap.generate.tiny import save_tiny_text2img

BATCH, STEPS, SIZE, BATCHES = 4, 10, 64, 2
CLASSES = ("cat", "dog")


def bare_seconds(model: Path) -> float:
    """Load the pipeline and call it on the same batches with the same seeds; nothing is written."""
    start = time.perf_counter()
    pipe = prepare_pipeline(load_pipeline(resolve_model(str(model)), "text2img", torch.float32, False), "ddim",
                            torch.device("cpu"))  # fmt: skip
    from synthgap.generate.classes import finish_classes

    classes = finish_classes([{"name": n} for n in CLASSES], where="bench")
    for batch in batches(text2img_items(classes, BATCH * BATCHES // len(CLASSES), 0), BATCH):
        pipe(prompt=[f"a photo of a {item.cls.name}" for item in batch], num_inference_steps=STEPS, guidance_scale=7.5,
             height=SIZE, width=SIZE, generator=generators(batch))  # fmt: skip
    return time.perf_counter() - start


class TimedGenerator(Text2ImgGenerator):
    """Counts the seconds spent inside the pipeline calls."""

    pipeline_seconds = 0.0

    def make_images(self, batch, generators):
        start = time.perf_counter()
        images = super().make_images(batch, generators)
        TimedGenerator.pipeline_seconds += time.perf_counter() - start
        return images


def loop_overhead_pct(model: Path, classes_file: Path, out: Path) -> float:
    config = Text2ImgConfig(out=out, model=str(model), classes=str(classes_file), per_class=BATCH * BATCHES // 2,
                            steps=STEPS, size=SIZE, batch_size=BATCH, precision="fp32")  # fmt: skip
    TimedGenerator.pipeline_seconds = 0.0
    start = time.perf_counter()
    TimedGenerator(config)(progress=True)
    total = time.perf_counter() - start
    return 100 * (total / TimedGenerator.pipeline_seconds - 1)


def project_seconds(model: Path, classes_file: Path, out: Path) -> float:
    """The project's loop on the same images as `bare_seconds`."""
    return project_seconds_at(model, classes_file, out, per_class=BATCH * BATCHES // len(CLASSES), steps=STEPS,
                              size=SIZE, batch_size=BATCH, precision="fp32")  # fmt: skip


def cuda_fp16_rate(folder: Path) -> float:
    model = Path(os.environ.get("SYNTHGAP_BENCH_MODEL", folder))
    classes_file = folder.parent / "classes.txt"
    per_class, batch = 16, 8
    warm = dict(per_class=batch // len(CLASSES), size=512, steps=50, batch_size=batch, precision="fp16")
    project_seconds_at(model, classes_file, folder.parent / "cuda-warm", **warm)
    seconds = project_seconds_at(model, classes_file, folder.parent / "cuda", **{**warm, "per_class": per_class})
    return per_class * len(CLASSES) / seconds


def project_seconds_at(model: Path, classes_file: Path, out: Path, **settings) -> float:
    config = Text2ImgConfig(out=out, model=str(model), classes=str(classes_file), **settings)
    start = time.perf_counter()
    result = generate_text2img(config, progress=True)
    assert result.written == result.total_images
    return time.perf_counter() - start


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is steadier on a small shared machine
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = save_tiny_text2img(root / "tiny-sd")
        classes_file = root / "classes.txt"
        classes_file.write_text("\n".join(CLASSES) + "\n")
        bare_seconds(model)  # warm-up (first calls allocate)
        bare, ours = [], []
        for repeat in range(3):  # interleaved, best of each: the least disturbed by other load
            bare.append(bare_seconds(model))
            ours.append(project_seconds(model, classes_file, root / f"out{repeat}"))
        images = BATCH * BATCHES
        report("generate_bare_img_per_s", images / min(bare), f"img/s (tiny, {SIZE} px, {STEPS} steps, CPU)")
        report("generate_project_img_per_s", images / min(ours), "img/s")
        report("generate_overhead_pct", 100 * (min(ours) / min(bare) - 1), "% (target <= 5)")
        report("generate_loop_overhead_pct", loop_overhead_pct(model, classes_file, root / "timed"), "%")
        torch.set_num_threads(threads)
        if torch.cuda.is_available():
            report("generate_cuda_fp16_img_per_s", cuda_fp16_rate(model), "img/s (512 px, 50 steps, batch 8)")


if __name__ == "__main__":
    main()
