"""Test-image variants that keep one visual cue and destroy the other, for a texture-vs-shape reliance score.

Shape kept, texture destroyed:
  grayscale_blur  luma only, then a Gaussian blur (sigma in pixels): colour and fine surface detail are gone, the
                  object's outline and layout stay.
  edges           inverted Sobel gradient magnitude of the luma, scaled per image: dark contours on white.
Texture kept, shape destroyed:
  patch_shuffle   the image cut into a grid×grid mosaic of patches, placed in a random order per image: local
                  colour and texture survive, the global shape does not.

All take and return uint8 B×3×H×W, so they feed the same loaders as the clean test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, the weights PIL and torchvision use for grayscale


def luma(images: torch.Tensor) -> torch.Tensor:
    """uint8 B×3×H×W → float B×1×H×W on the 0..255 scale."""
    weights = torch.tensor(LUMA, dtype=torch.float32)[None, :, None, None]
    return (images.float() * weights).sum(dim=1, keepdim=True)


def _to_uint8_rgb(gray: torch.Tensor) -> torch.Tensor:
    return gray.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian reaching ±3 sigma (at least 3 taps)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def grayscale_blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    gray = luma(images)
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    # separable blur with edge replication, so borders do not darken
    gray = F.conv2d(F.pad(gray, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    gray = F.conv2d(F.pad(gray, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return _to_uint8_rgb(gray)


def edge_map(images: torch.Tensor) -> torch.Tensor:
    gray = F.pad(luma(images), (1, 1, 1, 1), mode="replicate")
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel_x, sobel_x.T])[:, None]
    gradients = F.conv2d(gray, kernels)
    magnitude = gradients.square().sum(dim=1, keepdim=True).sqrt()
    peak = magnitude.amax(dim=(2, 3), keepdim=True).clamp(min=1e-6)  # a flat image stays white, not NaN
    return _to_uint8_rgb(255.0 * (1.0 - magnitude / peak))


def patch_shuffle(images: torch.Tensor, grid: int, generator: torch.Generator) -> torch.Tensor:
    """Cut into grid×grid patches (H and W must divide by grid) and permute them independently per image."""
    b, c, h, w = images.shape
    if grid < 2 or h % grid or w % grid:
        raise ValueError(f"patch grid must be >= 2 and divide the image size {h}×{w}, got {grid}")
    ph, pw = h // grid, w // grid
    patches = images.reshape(b, c, grid, ph, grid, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, grid * grid, c, ph, pw)
    order = torch.argsort(torch.rand(b, grid * grid, generator=generator), dim=1)
    shuffled = patches[torch.arange(b)[:, None], order]
    return shuffled.reshape(b, grid, grid, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w).contiguous()


@dataclass(frozen=True)
class CueVariants:
    """Which variants a texture-vs-shape evaluation makes, and their settings."""

    blur_sigma: float = 1.0
    grid: int = 4
    seed: int = 0  # the patch order, fixed so every student sees the same mosaics

    SHAPE = ("grayscale_blur", "edges")
    TEXTURE = ("patch_shuffle",)

    def apply(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The three variants of `images`; pass one generator through consecutive chunks of a set to get the
        patch orders of the whole set at once."""
        generator = generator or torch.Generator().manual_seed(self.seed)
        return {
            "grayscale_blur": grayscale_blur(images, self.blur_sigma),
            "edges": edge_map(images),
            "patch_shuffle": patch_shuffle(images, self.grid, generator),
        }


def texture_reliance(accuracy: dict[str, float], num_classes: int) -> float:
    """Share of above-chance accuracy a student keeps from texture rather than shape, in [0, 1].

    A_shape = mean top-1 over the shape-keeping variants, A_texture = top-1 on the texture-keeping one, c = chance
    (100 / classes); score = max(A_texture − c, 0) / (max(A_texture − c, 0) + max(A_shape − c, 0)).
    0: only shape-keeping images are recognised; 1: only texture-keeping ones; NaN when neither beats chance.
    """
    chance = 100.0 / num_classes
    shape = sum(accuracy[name] for name in CueVariants.SHAPE) / len(CueVariants.SHAPE)
    texture = sum(accuracy[name] for name in CueVariants.TEXTURE) / len(CueVariants.TEXTURE)
    shape_above, texture_above = max(shape - chance, 0.0), max(texture - chance, 0.0)
    if shape_above + texture_above == 0:
        return float("nan")
    return texture_above / (shape_above + texture_above)
