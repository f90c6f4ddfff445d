"""One command that checks synthgap's GPU paths on a CUDA machine and prints a Markdown table of what it measured.

    make gpu-check        # or: .venv/bin/python benchmarks/gpu_check.py

It needs only `make install`: no CIFAKE and no network. It writes random 256 px PNGs into a temporary folder laid
out as an ImageFolder (read through the `folder:` source) and saves the tiny local diffusers pipeline there. Six
checks, each in its own try/except (a check that raises is a FAIL row with its one-line error; the rest still run):

1. data path: `TensorLoader.on("cuda")` batches (resident and not) equal the CPU loader's for none / standard / rrc;
2. 224 px training: full-width ResNet-18 from a 256 px cache, `rrc`, fp16 autocast, channels_last: `fit` end to end
   vs the same `TrainStep` on in-memory random tensors (target e2e >= 0.90 x compute-only);
3. layer transfer: frozen-16 steps and a cached-prefix N = 16 stage 2 vs training all layers;
4. a 4-run Ray sweep (`synthgap run --backend ray --gpus-per-run 1`): records written, seconds;
5. fp16 generation on the tiny pipeline (`synthgap generate text2img --backend ray --shards 2`): images per second;
6. a distillation student vs the plain S student, seconds.

Exit status 1 when any check raised or missed its target, else 0. Sized for well under 8 minutes on one H100/H200;
without CUDA it prints one line and exits 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NO_CUDA = "gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing to check"
PASS, FAIL, INFO = "PASS", "FAIL", "info"
CLASSES = 10
STORED, SEEN = 256, 224  # the paper-scale view: decoded at 256 px, trained at 224 px
TRAIN_PER_CLASS = 256  # real side: 2,560 images, 10 steps of batch 256 per epoch at 224 px
SYNTHETIC_PER_CLASS = 60
BATCH_224, EPOCHS_224 = 256, 10  # 100 steps per timed pass
# The project's tolerance for CUDA vs CPU batches (tests/data/test_loader.py): interpolation may round one step apart.
BATCH_ATOL = 1.5 / 255 / 0.2
FFCV_RN18_A100_IMG_PER_S = 9700  # FFCV's published ResNet-18 training throughput on one A100
CLI = [sys.executable, "-c", "from synthgap.cli import main; main()"]


@dataclass(frozen=True)
class Row:
    """One line of the table: a measured value, its unit, what it is held against and the verdict."""

    name: str
    value: float | str
    unit: str = ""
    target: str = ""
    status: str = INFO


@dataclass(frozen=True)
class Workspace:
    """The temporary folder every check works in: the fake image folders and a decoded-image cache."""

    root: Path
    real: Path
    synthetic: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"


# --- pure helpers -----------------------------------------------------------------------------------------------


def format_value(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (a `|` inside a cell is escaped so an error message cannot split its row)."""
    lines = ["| check | value | unit | target or reference | result |", "|---|---|---|---|---|"]
    for row in rows:
        cells = (row.name, format_value(row.value), row.unit, row.target, row.status)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def at_least(value: float, target: float) -> str:
    return PASS if value >= target else FAIL


def error_line(exc: BaseException) -> str:
    """The exception as one short line: its type and the first line of its message."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def run_check(name: str, check: Callable[[], list[Row]]) -> list[Row]:
    """The check's rows, or one FAIL row with its error (the traceback goes to stderr) so later checks still run."""
    try:
        return check()
    except Exception as exc:  # any failure of one check must leave the others running
        traceback.print_exc()
        return [Row(name, error_line(exc), status=FAIL)]


def any_failed(rows: Sequence[Row]) -> bool:
    return any(row.status == FAIL for row in rows)


def write_class(folder: Path, count: int, size: int, seed: int) -> None:
    """`count` PNGs of size×size: smooth random colour fields (a small random grid upscaled) with a class tint.

    Smooth fields encode and decode quickly, and the tint makes the classes learnable, unlike pure noise.
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tint = rng.integers(0, 256, 3)
    for i in range(count):
        small = (rng.integers(0, 256, (8, 8, 3)) // 2 + tint // 2).astype(np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(folder / f"img_{i:05d}.png")


def write_image_folder(root: Path, classes: int, per_class: int, *, size: int = STORED, seed: int = 0,
                       workers: int = 1) -> Path:  # fmt: skip
    """An ImageFolder tree `root/class_<k>/img_<i>.png` (what the `folder:` source reads); returns `root`."""
    folders = [root / f"class_{k:02d}" for k in range(classes)]
    seeds = [seed * 1000 + k for k in range(classes)]
    if workers <= 1:
        for folder, class_seed in zip(folders, seeds, strict=True):
            write_class(folder, per_class, size, class_seed)
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(write_class, folders, [per_class] * classes, [size] * classes, seeds))
    return root


def progress(message: str) -> None:
    print(f"gpu-check: {message}", flush=True)


def timed(work: Callable[[], object]) -> tuple[float, object]:
    import torch

    start = time.perf_counter()
    result = work()
    torch.cuda.synchronize()
    return time.perf_counter() - start, result


# --- 1. the CUDA data path --------------------------------------------------------------------------------------


def check_data_path(ws: Workspace) -> list[Row]:
    """CUDA batches (set resident in GPU memory, and read per batch into pinned memory) equal the CPU's."""
    import torch

    from synthgap.data.config import DataPrep, load_split
    from synthgap.data.loader import TensorLoader
    from synthgap.data.transforms import build_augmentation, get_normalization

    prep = DataPrep(resolution=SEEN, storage_resolution=STORED, cache_dir=ws.cache)
    data = load_split(prep, f"folder:{ws.real}", "train", 8, progress=False)
    rows = []
    for preset in ("none", "standard", "rrc"):
        cpu = TensorLoader(data, batch_size=16, normalization=get_normalization("imagenet"), shuffle=True, seed=5,
                           augmentation=build_augmentation(preset, data.view_size), channels_last=True)  # fmt: skip
        for resident in (True, False):
            worst, labels_equal = 0.0, True
            for (a, la), (b, lb) in zip(cpu.epoch(2), cpu.on("cuda", resident=resident).epoch(2), strict=True):
                if b.device.type != "cuda":
                    raise RuntimeError(f"{preset}: batch on {b.device}, not on the GPU")
                labels_equal &= torch.equal(la, lb.cpu())
                worst = max(worst, (a - b.cpu()).abs().max().item())
            ok = labels_equal and worst <= BATCH_ATOL
            where = "resident" if resident else "not resident"
            rows.append(Row(f"data path `{preset}`, {where}: max abs difference CUDA vs CPU", worst,
                            "normalized units" + ("" if labels_equal else ", labels differ"),
                            f"<= {BATCH_ATOL:.4f} (1.5/255/0.2) and equal labels", PASS if ok else FAIL))  # fmt: skip
    return rows


# --- 2. 224 px training: end to end vs compute-only ---------------------------------------------------------------


def recipe_224():
    from synthgap.train.recipe import TrainRecipe

    return TrainRecipe(epochs=EPOCHS_224, batch_size=BATCH_224, warmup_epochs=0, augmentation="rrc", precision="fp16",
                       channels_last=True)  # fmt: skip


def resnet18_224():
    import torch

    from synthgap.models import ModelConfig, build_model

    torch.manual_seed(0)
    return build_model(ModelConfig(width=1.0, num_classes=CLASSES, image_size=SEEN))


def compute_only_seconds(steps: int) -> float:
    """`steps` of the same TrainStep `fit` uses, on one in-memory random batch; the warm-up steps are not timed."""
    import torch

    from synthgap.train.loop import TrainStep, build_optimizer

    device, recipe = torch.device("cuda"), recipe_224()
    net = resnet18_224().to(device, memory_format=torch.channels_last)
    step = TrainStep(net, build_optimizer(net, recipe), recipe, device)
    images = torch.randn(BATCH_224, 3, SEEN, SEEN, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, CLASSES, (BATCH_224,), device=device)
    for _ in range(3):  # allocation, cuDNN algorithm choice
        step(images, labels)
    seconds, _ = timed(lambda: [step(images, labels) for _ in range(steps)])
    return seconds


def fit_seconds(loader) -> float:
    """`fit` over the placed loader (its epochs, augmentation on the GPU, schedule, checks), the model built before."""
    import torch

    from synthgap.train.loop import fit

    model = resnet18_224()
    seconds, _ = timed(lambda: fit(model, loader, None, recipe_224(), progress=False, device=torch.device("cuda")))
    return seconds


def check_train_224(ws: Workspace) -> list[Row]:
    from synthgap.data.config import DataPrep, load_split
    from synthgap.train.loaders import recipe_loaders

    prep = DataPrep(resolution=SEEN, storage_resolution=STORED, cache_dir=ws.cache)
    train = load_split(prep, f"folder:{ws.real}", "train", TRAIN_PER_CLASS, progress=False)
    loader, _ = recipe_loaders(train, train, recipe_224(), seed=0)
    streamed = loader.on("cuda", resident=False)  # the paper-scale case: the set does not fit on the GPU
    images = EPOCHS_224 * len(loader) * BATCH_224
    fit_seconds(streamed)  # warm-up, as the compute-only side gets warm-up steps
    compute, e2e = [], []
    for _ in range(2):  # interleaved, best of each: a change in load hits both sides alike
        compute.append(compute_only_seconds(EPOCHS_224 * len(loader)))
        e2e.append(fit_seconds(streamed))
    resident = fit_seconds(loader.on("cuda", resident=True))
    compute_rate, e2e_rate = images / min(compute), images / min(e2e)
    ratio = e2e_rate / compute_rate
    setting = f"ResNet-18, {SEEN} px from {STORED}, rrc, fp16, batch {BATCH_224}"
    return [
        Row(f"train 224: compute-only TrainStep ({setting})", compute_rate, "img/s"),
        Row("train 224: `fit` end to end, set not resident (pread + pinned copy)", e2e_rate, "img/s"),
        Row("train 224: end to end / compute-only", ratio, "ratio", ">= 0.90", at_least(ratio, 0.90)),
        Row("train 224: `fit` end to end, set resident on the GPU", images / resident, "img/s"),
        Row(
            "FFCV ResNet-18 training, one A100 (published)",
            FFCV_RN18_A100_IMG_PER_S,
            "img/s",
            "reference from elsewhere: FFCV's own figure, different GPU and recipe",
        ),
    ]


# --- 3. frozen-16 steps and the cached-prefix stage 2 ------------------------------------------------------------


def check_transfer(ws: Workspace) -> list[Row]:
    """bench_train's frozen-16 step rate and bench_transfer's stage 2, on the fake 32 px images and the GPU."""
    from benchmarks.bench_train import compute_only_rate
    from benchmarks.bench_transfer import EPOCHS, timed_stage2
    from synthgap.data.config import DataPrep, load_split

    prep = DataPrep(resolution=32, cache_dir=ws.cache)
    train = load_split(prep, f"folder:{ws.real}", "train", 100, progress=False)
    test = load_split(prep.model_copy(update={"subset_seed": 1}), f"folder:{ws.real}", "test", 20, progress=False)
    full_rate = max(compute_only_rate() for _ in range(2))
    frozen_rate = compute_only_rate(frozen=16)
    timed_stage2(0, train, test)  # warm-up
    full = min(timed_stage2(0, train, test) for _ in range(2))  # N = 0: every layer trained
    n16 = min(timed_stage2(16, train, test) for _ in range(2))
    stage2 = f"{EPOCHS} epochs, {len(train)} images, 32 px"
    return [
        Row(
            "frozen-16 train steps / all layers (32 px, batch 128)",
            frozen_rate / full_rate,
            f"x ({frozen_rate:,.0f} vs {full_rate:,.0f} img/s)",
            "CPU target >= 3",
        ),
        Row(f"stage 2, all layers trained ({stage2})", full[0], "s"),
        Row("stage 2, N = 16 frozen, cached prefix (feature pass included)", n16[0], "s"),
        Row("stage 2 N = 16 cached speed-up vs all layers", full[0] / n16[0], "x", "CPU target >= 10"),
        Row("stage 2 N = 16 training-loop speed-up (feature pass excluded)", full[1] / n16[1], "x"),
    ]


# --- 4. a Ray sweep, one GPU per run -----------------------------------------------------------------------------


def tiny_spec(ws: Workspace, name: str, experiments: list[dict], recipe: dict) -> dict:
    """A small spec over the fake folders: real side = the 256 px set, synthetic side = the second set, 32 px."""
    return {
        "name": name,
        "data": {
            "real": f"folder:{ws.real}",
            "synthetic": f"folder:{ws.synthetic}",
            "test": f"folder:{ws.real}",
            "per_class": 50,
            "test_per_class": 20,
            "cache_dir": str(ws.cache),
        },
        "model": {"width": 0.5},
        "recipe": {"batch_size": 64, **recipe},
        "seeds": [0],
        "experiments": experiments,
    }


def run_cli(args: list[str], timeout: float) -> float:
    """Seconds of one `synthgap` command; its output is kept and shown only if it fails."""
    start = time.perf_counter()
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"synthgap {args[0]} exited {done.returncode}: {lines[-1]}")
    return seconds


def check_ray_sweep(ws: Workspace) -> list[Row]:
    experiments = [{"kind": "baseline"}, {"kind": "layer_transfer", "n": [8], "augmentation": "none"}]
    spec = ws.root / "ray-sweep.yaml"  # JSON is YAML
    spec.write_text(json.dumps(tiny_spec(ws, "gpu-check-ray", experiments, {"epochs": 2})))
    out = ws.root / "ray-sweep"
    ray = ["--backend", "ray", "--workers", "1", "--gpus-per-run", "1"]
    args = ["run", str(spec), "--out", str(out), "--model-cache", str(ws.root / "ray-models"), *ray, "--quiet"]
    seconds = run_cli(args, timeout=150)  # a hung Ray start must not take the 8 minutes
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    devices = sorted({(r.get("compute") or {}).get("device", "?") for r in records})
    ok = len(records) == 4 and devices == ["cuda"]
    return [
        Row(
            "Ray sweep (2 baselines + 2 transfers, --gpus-per-run 1): records",
            len(records),
            f"records, computed on {', '.join(devices)}",
            "4, all on cuda",
            PASS if ok else FAIL,
        ),
        Row("Ray sweep: wall time (Ray start and worker imports included)", seconds, "s"),
    ]


# --- 5. fp16 generation on Ray shards ----------------------------------------------------------------------------


def check_generate(ws: Workspace) -> list[Row]:
    from synthgap.generate.tiny import save_tiny_text2img

    model = save_tiny_text2img(ws.root / "tiny-sd")
    classes = ws.root / "classes.txt"
    classes.write_text("cat\ndog\n")
    out, per_class, size, steps = ws.root / "generated", 16, 128, 20
    seconds = run_cli(["generate", "text2img", "--model", str(model), "--classes", str(classes), "--out", str(out),
                       "--per-class", str(per_class), "--size", str(size), "--steps", str(steps), "--batch-size", "8",
                       "--precision", "fp16", "--no-previews", "--backend", "ray", "--shards", "2", "--quiet"],
                      timeout=150)  # fmt: skip
    written = [p for p in out.glob("*/*.png") if p.parent.name in ("cat", "dog")]
    expected = 2 * per_class
    return [
        Row("generate text2img, tiny pipeline, fp16, Ray, 2 shards: images written", len(written), "images",
            str(expected), PASS if len(written) == expected else FAIL),  # fmt: skip
        Row(f"generate: throughput ({size} px, {steps} steps, batch 8; Ray start and model loads included)",
            len(written) / seconds, "img/s", "tiny random weights: the loop's bound, not Stable Diffusion's speed"),
    ]  # fmt: skip


# --- 6. a distillation student ------------------------------------------------------------------------------------


def check_distillation(ws: Workspace) -> list[Row]:
    from synthgap.config import validate
    from synthgap.experiments.runner import run_experiment
    from synthgap.experiments.spec import ExperimentSpec

    experiments = [{"kind": "baseline"}, {"kind": "distillation"}]
    raw = tiny_spec(ws, "gpu-check-distill", experiments, {"epochs": 3, "augmentation": "standard"})
    out = ws.root / "distill"
    records = run_experiment(validate(ExperimentSpec, raw), out, model_cache=ws.root / "distill-models",
                             progress=False)  # fmt: skip
    by_run = {r.run: r for r in records}
    plain = by_run["baseline-synthetic-s0"]
    (distilled,) = [r for r in records if r.kind == "distillation"]
    off_gpu = [r.run for r in records if (r.compute or {}).get("device") != "cuda"]
    if off_gpu:
        raise RuntimeError(f"runs not computed on cuda: {', '.join(off_gpu)}")
    ratio = distilled.seconds / plain.seconds
    return [
        Row("distillation student (live R teacher, standard aug., 3 epochs)", distilled.seconds, "s"),
        Row("plain S student, same images and epochs", plain.seconds, "s"),
        Row("distillation / plain S", ratio, "x", "CPU target <= 1.5 (bench_remedies distill_live_vs_s)"),
    ]


# --- the command -------------------------------------------------------------------------------------------------


def prepare(root: Path) -> Workspace:
    workers = min(CLASSES, os.cpu_count() or 1)
    ws = Workspace(root, root / "real", root / "synthetic")
    write_image_folder(ws.real, CLASSES, TRAIN_PER_CLASS, seed=0, workers=workers)
    write_image_folder(ws.synthetic, CLASSES, SYNTHETIC_PER_CLASS, seed=1, workers=workers)
    # every cache, model download attempt and Ray child stays inside the temporary folder and offline
    os.environ["SYNTHGAP_CACHE_DIR"] = str(ws.cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    return ws


CHECKS: list[tuple[str, Callable[[Workspace], list[Row]]]] = [
    ("data path CUDA vs CPU", check_data_path),
    ("train 224 end to end vs compute-only", check_train_224),
    ("frozen-16 and cached-prefix stage 2", check_transfer),
    ("Ray sweep, one GPU per run", check_ray_sweep),
    ("fp16 generation on Ray shards", check_generate),
    ("distillation vs plain S", check_distillation),
]


# Files that exist where an NVIDIA GPU and its driver are: CUDA unusable there is a failure, not "no GPU"
NVIDIA_SIGNS = ("/dev/nvidia0", "/proc/driver/nvidia/version")


def cuda_problem() -> str | None:
    """Why a GPU that is here cannot be used (a driver older than the wheels' CUDA, a CPU-only torch, a first kernel
    that fails); None when CUDA works, or when no NVIDIA device is here or visible (CUDA_VISIBLE_DEVICES empty)."""
    import shutil

    import torch

    if torch.cuda.is_available():
        try:
            probe = torch.ones(8, device="cuda")
            float((probe * 2).sum())
            torch.cuda.synchronize()
        except Exception as exc:  # any failure of the first kernel is the machine's, and the reason to report
            return f"CUDA is available but a first kernel failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        return None
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return None  # devices hidden on purpose
    signs = [path for path in NVIDIA_SIGNS if Path(path).exists()] + (
        ["nvidia-smi"] if shutil.which("nvidia-smi") else []
    )
    if not signs:
        return None
    return (
        f"an NVIDIA GPU is here ({', '.join(signs)}) but torch {torch.__version__} (CUDA {torch.version.cuda}) cannot "
        "use it: torch.cuda.is_available() is False (a driver older than the CUDA of these wheels, or a CPU-only torch)"
    )


def main() -> int:
    import torch

    problem = cuda_problem()
    if problem is not None:
        print(f"gpu-check: FAIL: {problem}", flush=True)
        return 1
    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    start = time.perf_counter()
    progress(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="synthgap-gpu-check-") as folder:
        ws = prepare(Path(folder))
        progress(f"fake image folders written in {time.perf_counter() - start:.1f} s")
        for number, (name, check) in enumerate(CHECKS, 1):
            began = time.perf_counter()
            progress(f"[{number}/{len(CHECKS)}] {name} ...")
            found = run_check(name, lambda check=check: check(ws))
            rows += found
            torch.cuda.empty_cache()  # hand cached blocks back: the Ray checks' worker processes share this GPU
            verdict = FAIL if any_failed(found) else "done"
            progress(f"[{number}/{len(CHECKS)}] {name}: {verdict} in {time.perf_counter() - began:.1f} s")
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, {time.perf_counter() - start:.0f} s in all\n")
    print(format_table(rows), flush=True)
    return 1 if any_failed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
