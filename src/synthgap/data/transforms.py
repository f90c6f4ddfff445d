"""Batched augmentation on uint8 tensors (B×3×H×W) and normalization to float.

Augmenting a whole batch with a few tensor ops is an order of magnitude faster than per-image PIL transforms in
DataLoader workers, which matters on a 2-core machine where the student itself trains at ~1,000 img/s.
Every random choice draws from the `generator` passed in, so a seeded loader reproduces its batches exactly.

The random draws are made on the CPU (where the generator lives) even when the images are on a GPU, so a batch
is augmented the same way on either device; only the image arithmetic runs where the images are. Presets whose
class sets `runs_on_device = True` take images on any device; the others are applied on the CPU before the batch
is moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from synthgap.data.presets import AUGMENTATIONS
from synthgap.errors import SynthgapError


def random_crop_with_padding(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` on every side, then cut a random H×W window per image."""
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = _on(images, (top[:, None] + torch.arange(h))[:, None, :, None])
    cols = _on(images, (left[:, None] + torch.arange(w))[:, None, None, :])
    batch = _on(images, torch.arange(b)[:, None, None, None])
    channel = _on(images, torch.arange(c)[None, :, None, None])
    return padded[batch, channel, rows, cols]


def random_hflip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    flip = _on(images, torch.rand(images.shape[0], generator=generator) < p)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def _on(images: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`values` (drawn on the CPU) where `images` are; a no-op on the CPU. Non-blocking: a copy from pageable
    memory is staged at once, so the host does not wait for the GPU's queue."""
    return values if values.device == images.device else values.to(images.device, non_blocking=True)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size×size window of every image (the test view of images stored larger than they are seen)."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if size > min(h, w):
        raise ValueError(f"cannot centre-crop {h}×{w} images to {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]


def random_resized_crop_boxes(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    tries: int = 10,
) -> torch.Tensor:
    """Boxes (x1, y1, x2, y2) sampled like torchvision's RandomResizedCrop: area and log-aspect uniform, up to
    `tries` draws per image, falling back to the whole image."""
    area = height * width
    target = area * torch.empty(batch, tries).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(batch, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_ratio)
    crop_w = torch.sqrt(target * aspect).round()
    crop_h = torch.sqrt(target / aspect).round()
    fits = (crop_w > 0) & (crop_h > 0) & (crop_w <= width) & (crop_h <= height)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((batch,), -1))
    pick = first.clamp(min=0)[:, None]
    crop_w = torch.where(first >= 0, crop_w.gather(1, pick)[:, 0], torch.tensor(float(width)))
    crop_h = torch.where(first >= 0, crop_h.gather(1, pick)[:, 0], torch.tensor(float(height)))
    x1 = (torch.rand(batch, generator=generator) * (width - crop_w + 1)).floor()
    y1 = (torch.rand(batch, generator=generator) * (height - crop_h + 1)).floor()
    return torch.stack([x1, y1, x1 + crop_w, y1 + crop_h], dim=1)


def random_resized_crop(
    images: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    size: int | None = None,
) -> torch.Tensor:
    """Per-image random crop of the whole stored image, resized to size×size (default: back to H×W) with bilinear
    sampling (roi_align), returned as uint8."""
    b, _, h, w = images.shape
    boxes = random_resized_crop_boxes(b, h, w, generator, scale=scale)
    rois = _on(images, torch.cat([torch.arange(b, dtype=boxes.dtype)[:, None], boxes], dim=1))
    output = (size, size) if size else (h, w)
    out = roi_align(images.float(), rois, output_size=output, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


class Augmentation(Protocol):
    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


@AUGMENTATIONS.register("none")
class NoAugmentation:
    runs_on_device = True

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return images


@AUGMENTATIONS.register("standard")
class CropFlip:
    """The CIFAR standard: random crop after zero-padding, then horizontal flip."""

    runs_on_device = True

    def __init__(self, *, padding: int = 4) -> None:
        self.padding = padding

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_hflip(random_crop_with_padding(images, self.padding, generator), generator)


def random_cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one size×size square per image at a random centre (cut off at the borders, so near an edge less is
    hidden): the cutout regulariser of the CIFAR speed recipes."""
    b, _, h, w = images.shape
    top = torch.randint(0, h, (b,), generator=generator) - size // 2
    left = torch.randint(0, w, (b,), generator=generator) - size // 2
    rows = torch.arange(h)[None, :] - top[:, None]
    cols = torch.arange(w)[None, :] - left[:, None]
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    return images.masked_fill(_on(images, inside[:, None]), 0)


@AUGMENTATIONS.register("cutout")
class CropFlipCutout:
    """The CIFAR standard (pad-4 crop + flip) followed by cutout of a square a quarter of the image's side."""

    runs_on_device = True

    def __init__(self, *, padding: int = 4, fraction: float = 0.25) -> None:
        self.padding, self.fraction = padding, fraction

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        images = random_hflip(random_crop_with_padding(images, self.padding, generator), generator)
        return random_cutout(images, max(1, round(self.fraction * images.shape[-1])), generator)


@AUGMENTATIONS.register("rrc")
class ResizedCropFlip:
    """The ImageNet standard: random-resized crop, then horizontal flip. With `size`, the crop is taken from the
    whole stored image and resized to size×size (e.g. 224 from images stored at 256)."""

    runs_on_device = True
    crops_stored_image = True

    def __init__(self, *, scale: tuple[float, float] = (0.08, 1.0), size: int | None = None) -> None:
        self.scale = scale
        self.size = size

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_hflip(random_resized_crop(images, generator, self.scale, self.size), generator)


class CenterCropped:
    """An augmentation applied to the centre size×size crop: how presets that keep the image size see images
    stored larger than the training resolution (the same view the test images get)."""

    def __init__(self, augmentation: Augmentation, size: int) -> None:
        self.augmentation = augmentation
        self.size = size
        self.runs_on_device = getattr(augmentation, "runs_on_device", False)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.augmentation(center_crop(images, self.size), generator)


def build_augmentation(name: str, size: int | None = None) -> Augmentation:
    """The preset `name`; with `size` (images stored larger than they are trained at), one that returns size×size
    images: a preset that crops the stored image itself (`rrc`) crops to it, the others see the centre crop."""
    preset = AUGMENTATIONS.get(name)
    if size is None:
        return preset()
    if getattr(preset, "crops_stored_image", False):
        return preset(size=size)
    return CenterCropped(preset(), size)


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean/std on the 0..1 scale."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("normalization needs three means and three stds (red, green, blue)")
        if not all(0.0 <= m <= 1.0 for m in self.mean) or not all(s > 0.0 for s in self.std):
            raise ValueError(f"normalization means must be in 0..1 and stds positive, got {self.mean} / {self.std}")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 B×3×H×W → float32, (x/255 − mean)/std in one fused multiply-add (on the images' device)."""
        std = torch.tensor(self.std)
        scale = _on(images, (1.0 / (255.0 * std))[None, :, None, None])
        shift = _on(images, (torch.tensor(self.mean) / std)[None, :, None, None])
        return torch.addcmul(-shift, images.float(), scale)


NORMALIZATIONS: dict[str, Normalization] = {
    "imagenet": Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "none": Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def get_normalization(choice: str | Normalization) -> Normalization:
    """A named normalization, or explicit statistics (e.g. measured by `synthgap data stats`) as they are."""
    if isinstance(choice, Normalization):
        return choice
    if choice not in NORMALIZATIONS:
        raise SynthgapError(f"unknown normalization {choice!r}; choose from: {', '.join(NORMALIZATIONS)}")
    return NORMALIZATIONS[choice]


# The AutoAugment-family presets register themselves in AUGMENTATIONS: whoever reads the presets reads them here.
from synthgap.data import autoaugment  # noqa: E402,F401
