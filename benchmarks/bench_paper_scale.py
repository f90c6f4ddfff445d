"""The paper-scale data path: an ImageNet-100-sized tree, cached at 256 px, trained at 224 px.

    .venv/bin/python benchmarks/bench_paper_scale.py WORKDIR            # both figures
    .venv/bin/python benchmarks/bench_paper_scale.py WORKDIR --only rss  # or: --only loader

WORKDIR receives the fake tree (100 classes × 1,300 JPEGs of about 500×375, ~2 GB, made once) and the decoded
cache (130,000 × 3 × 256 × 256 bytes, ~25.6 GB). Not part of `make bench`: it needs ~30 GB of disk and ~20 min.

- paper_scale_rss: peak resident memory (VmHWM) of a 224 px training process (`fit` on 192 images per class, rrc
  from the stored 256 px images, batch 64, an eighth-width ResNet-18) over one epoch of 300 steps, alone and with a
  second such process at once. Target: each <= 3 GB while the cache is >= 20 GB.

`--classes 4 --per-class 60` makes a small tree for a quick check of the script itself.
- loader_224_img_per_s: the loader alone (pread of the batch, rrc 256 → 224, flip, normalize) and `fit` end to end
  vs the same `TrainStep` on in-memory random tensors, full-width ResNet-18 at 224 px, batch 64 (target on a GPU:
  e2e >= 0.90 × compute-only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLASSES = 100
PER_CLASS = 1300
SIZES = [(500, 375), (375, 500), (500, 333), (500, 400), (450, 338)]  # ImageNet photos: ~500 px longer side
STORAGE, RESOLUTION = 256, 224
RSS_BATCH, RSS_STEPS, RSS_WIDTH = 64, 300, 0.125
LOADER_BATCH, LOADER_STEPS = 64, 6


def set_scale(classes: int, per_class: int) -> None:
    """A smaller tree (and proportionally fewer training steps) for a quick check of the script."""
    global CLASSES, PER_CLASS, RSS_STEPS
    if (classes, per_class) != (CLASSES, PER_CLASS):
        RSS_STEPS = max(2, min(RSS_STEPS, classes * per_class // RSS_BATCH))
    CLASSES, PER_CLASS = classes, per_class


def make_class(root: Path, label: int, count: int) -> None:
    """`count` JPEGs of one class: smooth random colour fields (a small random image upscaled), seeded by label."""
    from PIL import Image

    folder = root / f"n{label:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(label)
    tint = rng.integers(0, 256, 3)
    for i in range(count):
        path = folder / f"n{label:08d}_{i}.JPEG"
        if path.exists():
            continue
        small = (rng.integers(0, 256, (9, 12, 3)) // 2 + tint // 2).astype(np.uint8)
        width, height = SIZES[i % len(SIZES)]
        image = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
        image.save(path, quality=90)


def make_tree(root: Path, workers: int) -> float:
    """The fake ImageNet-100 training tree under `root` (kept between runs); returns seconds spent."""
    done = root / ".complete"
    if done.exists():
        return 0.0
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(make_class, [root] * CLASSES, range(CLASSES), [PER_CLASS] * CLASSES))
    done.write_text("")
    return time.perf_counter() - start


def data_prep(workdir: Path):
    from synthgap.data.config import DataPrep

    return DataPrep(resolution=RESOLUTION, storage_resolution=STORAGE, cache_dir=workdir / "cache")


def ref(workdir: Path) -> str:
    return f"folder:{workdir / 'imagenet100-fake'}"


def vm_peak_bytes() -> int:
    """The process's peak resident set (VmHWM): anonymous memory and any file pages it mapped and touched."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_child(workdir: Path) -> None:
    """One 224 px training process: prints its peak RSS and throughput as JSON."""
    import torch

    from synthgap.data.config import load_split
    from synthgap.models import ModelConfig, build_model
    from synthgap.train.loaders import recipe_loaders
    from synthgap.train.loop import fit
    from synthgap.train.recipe import TrainRecipe

    per_class = RSS_STEPS * RSS_BATCH // CLASSES
    start = time.perf_counter()
    train = load_split(data_prep(workdir), ref(workdir), "train", per_class, progress=False)
    opened = time.perf_counter() - start
    recipe = TrainRecipe(epochs=1, batch_size=RSS_BATCH, warmup_epochs=0, augmentation="rrc")
    loader, _ = recipe_loaders(train, train, recipe, seed=0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=RSS_WIDTH, num_classes=CLASSES, image_size=RESOLUTION))
    result = fit(model, loader, None, recipe, progress=False)
    steps = len(loader)
    print(json.dumps({"peak_rss": vm_peak_bytes(), "steps": steps, "img_per_s": steps * RSS_BATCH / result.seconds,
                      "open_s": opened, "threads": torch.get_num_threads()}))  # fmt: skip


def run_children(workdir: Path, count: int) -> list[dict]:
    """`count` training processes at once (one torch thread each when there are two); their JSON reports."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // count))}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                str(workdir),
                "--child",
                "--classes",
                str(CLASSES),
                "--per-class",
                str(PER_CLASS),
            ],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(count)
    ]
    reports = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"training child failed with exit code {proc.returncode}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def bench_rss(workdir: Path) -> None:
    from benchmarks.common import report
    from synthgap.data.config import load_split

    workers = os.cpu_count() or 1
    seconds = make_tree(workdir / "imagenet100-fake", workers)
    report("paper_scale_tree_s", seconds, "s (0 when the tree was already there)")
    start = time.perf_counter()
    images = load_split(data_prep(workdir), ref(workdir), "train", None, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    cache_bytes = sum(p.stat().st_size for p in (workdir / "cache").glob("*.safetensors"))
    report("paper_scale_images", len(images), f"images, stored at {images.stored_size[0]} px")
    report("paper_scale_cache_gb", cache_bytes / 1e9, "GB")
    report("paper_scale_decode_or_open_s", seconds, "s (decode, write and checksum; or verify and open)")
    del images
    for count in (1, 2):
        for i, child in enumerate(run_children(workdir, count)):
            report(f"paper_scale_rss_{count}proc_{i}_gb", child["peak_rss"] / 1e9,
                   f"GB peak RSS (target <= 3); {child['steps']} steps at {child['img_per_s']:.1f} img/s, "
                   f"{child['threads']} threads, cache verified and opened in {child['open_s']:.1f} s")  # fmt: skip


def bench_loader(workdir: Path) -> None:
    import torch

    from benchmarks.common import best_rate, report
    from synthgap.data.config import load_split
    from synthgap.models import ModelConfig, build_model
    from synthgap.train.loaders import recipe_loaders
    from synthgap.train.loop import TrainStep, build_optimizer, default_device, fit
    from synthgap.train.recipe import TrainRecipe

    device = default_device()
    per_class = min(PER_CLASS, LOADER_STEPS * LOADER_BATCH // CLASSES + 1)
    train = load_split(data_prep(workdir), ref(workdir), "train", per_class, progress=False)
    recipe = TrainRecipe(epochs=1, batch_size=LOADER_BATCH, warmup_epochs=0, augmentation="rrc")
    loader, _ = recipe_loaders(train, train, recipe, seed=0)
    placed = loader.on(device, resident=False)  # the paper-scale case: the set does not fit on the device

    def loader_only() -> int:
        count = 0
        for images, _ in placed.epoch(0):
            count += len(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return count

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        built = build_model(ModelConfig(width=1.0, num_classes=CLASSES, image_size=RESOLUTION))
        return built.to(memory_format=torch.channels_last)

    def compute_only_rate() -> float:
        """The same steps on one in-memory random batch; warm-up (allocation, cuDNN autotune) not timed."""
        net = model().to(device)
        step = TrainStep(net, build_optimizer(net, recipe), recipe, device)
        images = torch.randn(LOADER_BATCH, 3, RESOLUTION, RESOLUTION, device=device)
        images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, CLASSES, (LOADER_BATCH,), device=device)
        step(images, labels)
        start = time.perf_counter()
        for _ in range(len(loader)):
            step(images, labels)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return len(loader) * LOADER_BATCH / (time.perf_counter() - start)

    def end_to_end() -> int:
        fit(model(), loader, None, recipe, progress=False, device=device)
        return len(loader) * LOADER_BATCH

    rate = best_rate(loader_only, repeats=2)
    report("loader_224_img_per_s", rate, f"img/s (pread + rrc + flip + normalize, {device})")
    end_to_end()  # warm-up (first-call allocation, kernel selection), as the compute-only side gets one
    compute, e2e = [], []
    for _ in range(2):  # interleaved: a change in load hits both sides alike
        compute.append(compute_only_rate())
        e2e.append(best_rate(end_to_end, repeats=1))
    report("train_224_compute_only_img_per_s", max(compute), f"img/s (ResNet-18, batch {LOADER_BATCH}, {device})")
    report("train_224_e2e_img_per_s", max(e2e), "img/s")
    report("train_224_e2e_vs_compute", max(e2e) / max(compute), "(target on a GPU >= 0.90)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--only", choices=["rss", "loader"])
    parser.add_argument("--classes", type=int, default=CLASSES)
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_scale(args.classes, args.per_class)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        rss_child(args.workdir)
        return
    if args.only in (None, "rss"):
        bench_rss(args.workdir)
    if args.only in (None, "loader"):
        bench_loader(args.workdir)


if __name__ == "__main__":
    main()
