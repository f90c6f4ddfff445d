"""Test-time augmentation: the views of each test image whose logits a student averages, weighted.

`flip` averages an image and its mirror image. `flip_translate` also shifts both by one pixel, down-right and
up-left, the border filled by reflection; the unshifted pair keeps half the weight, as the shifts are the weaker
evidence. One table serves both paths that test a student: images (views made here) and a frozen prefix's cached
features (each view's features computed once, in the table's order; `synthgap.experiments.transfer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class View:
    mirror: bool
    shift: int  # pixels down and right (negative: up and left); the uncovered border is reflected
    weight: float  # of this view's logits in the mean; a policy's weights sum to 1


PLAIN = View(False, 0, 1.0)  # the image as it is
TTA_VIEWS: dict[str, tuple[View, ...]] = {
    "none": (PLAIN,),
    "flip": (View(False, 0, 0.5), View(True, 0, 0.5)),
    "flip_translate": (
        View(False, 0, 0.25),
        View(True, 0, 0.25),
        View(False, 1, 0.125),
        View(True, 1, 0.125),
        View(False, -1, 0.125),
        View(True, -1, 0.125),
    ),
}


def tta_views(name: str) -> tuple[View, ...]:
    """The views of the policy `name` (a recipe's `tta`), the plain image first."""
    return TTA_VIEWS[name]


def apply_view(images: torch.Tensor, view: View) -> torch.Tensor:
    """`images` (N, C, H, W) as `view` sees them."""
    if view.shift:
        pad = abs(view.shift)
        padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
        start = 0 if view.shift > 0 else 2 * pad  # content moves towards larger indices when shifted down-right
        images = padded[..., start : start + images.shape[-2], start : start + images.shape[-1]]
    return images.flip(-1) if view.mirror else images
