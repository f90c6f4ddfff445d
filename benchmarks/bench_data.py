"""Data pipeline: synthgap's cached-tensor loader vs torchvision ImageFolder + DataLoader on the same images.

Both produce normalised float batches of 128 with the CIFAR augmentation (pad-4 random crop + horizontal flip),
on the same 30,000 CIFAKE real training images and the same cores.

Also the throughput of each augmentation preset through the same loader (augment + normalize, batch 128, 32 px),
to compare with the student's training speed (~1,000-2,000 img/s on 2 cores).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torchvision import datasets
from torchvision.transforms import v2

from benchmarks.common import best_rate, cifake_real_folder, cifake_train_real, report
from synthgap.data.loader import TensorLoader
from synthgap.data.sources import open_source
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import build_augmentation, get_normalization

BATCH = 128
AUGMENTATION_PRESETS = ("none", "standard", "randaugment", "trivialaugment", "autoaugment", "augmix")


def synthgap_rate() -> float:
    data = cifake_train_real()
    norm = get_normalization("imagenet")
    loader = TensorLoader(
        data,
        batch_size=BATCH,
        normalization=norm,
        augmentation=build_augmentation("standard"),
        shuffle=True,
        drop_last=True,
        channels_last=True,
    )

    def one_epoch() -> int:
        return sum(len(labels) for _, labels in loader.epoch(0))

    return best_rate(one_epoch)


def imagefolder_view(folder: Path) -> Path:
    """An ImageFolder tree of symlinks to the CIFAKE files (CIFAKE keeps labels in file names, not folders)."""
    index = open_source("cifake:real", "train")
    view = Path(tempfile.mkdtemp(prefix="synthgap-bench-"))
    for path, label in zip(index.paths, index.labels.tolist(), strict=True):
        class_dir = view / index.classes[label]
        class_dir.mkdir(exist_ok=True)
        os.symlink(path, class_dir / path.name.replace(" ", "_"))
    return view


def torchvision_rate(workers: int) -> float:
    transform = v2.Compose([
        v2.ToImage(), v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])  # fmt: skip
    dataset = datasets.ImageFolder(str(imagefolder_view(cifake_real_folder())), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, drop_last=True, num_workers=workers, persistent_workers=workers > 0
    )

    def one_epoch() -> int:
        return sum(len(labels) for _, labels in loader)

    return best_rate(one_epoch, repeats=2)


def loader_rate(loader: TensorLoader, repeats: int = 3) -> float:
    def one_epoch() -> int:
        return sum(len(labels) for _, labels in loader.epoch(0))

    return best_rate(one_epoch, repeats=repeats)


def augmentation_rates(data: ImageTensors, batches: int = 40, repeats: int = 3) -> dict[str, float]:
    """img/s of each preset in AUGMENTATION_PRESETS: a TensorLoader epoch (shuffle, augment, normalize) over the
    first `batches` batches of 128 images of `data`."""
    subset = data.select(torch.arange(min(len(data), batches * BATCH)))
    rates = {}
    for name in AUGMENTATION_PRESETS:
        loader = TensorLoader(
            subset,
            batch_size=BATCH,
            normalization=get_normalization("imagenet"),
            augmentation=build_augmentation(name),
            shuffle=True,
            drop_last=True,
            channels_last=True,
        )
        rates[name] = loader_rate(loader, repeats)
    return rates


def main() -> None:
    ours = synthgap_rate()
    workers = os.cpu_count() or 1
    stock = torchvision_rate(workers)
    report("data_synthgap_img_per_s", ours, "img/s")
    report(f"data_torchvision_imagefolder_{workers}workers_img_per_s", stock, "img/s")
    report("data_pipeline_speedup", ours / stock, "x (target >= 8)")
    for name, rate in augmentation_rates(cifake_train_real()).items():
        report(f"data_augment_{name}_img_per_s", rate, "img/s (loader incl. normalize, batch 128, 32 px)")


if __name__ == "__main__":
    main()
