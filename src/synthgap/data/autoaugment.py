"""RandAugment, TrivialAugmentWide, AutoAugment and AugMix on uint8 batches (B×3×H×W), one random draw per image.

The op lists, magnitude bins, signs and probabilities follow torchvision's v2 transforms of the same names, but
torchvision applies a single draw to a whole batch tensor, so every image of a batch would get the same op: here
each image draws its own op, magnitude and sign. An op layer then runs each op once, on the images that drew it,
so its cost is at most one batched call per op and never one call per image. Every random number comes from the
`generator` passed in, so a seeded loader reproduces its batches exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as tvF

from synthgap.data.presets import AUGMENTATIONS

# ---------------------------------------------------------------------------------------------------------------
# Colour and histogram ops. Each takes uint8 images B×3×H×W and a float64 magnitude per image (B,) and returns
# uint8 images; the magnitudes mean what they mean in torchvision's auto-augment ops (a blend factor of 1 + m,
# posterize bits, solarize threshold as a fraction of 255, ...).
# ---------------------------------------------------------------------------------------------------------------


def _per_image(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per-image float64 values → float32 B×1×1×1, to broadcast over images."""
    return values.to(device=images.device, dtype=torch.float32).view(-1, 1, 1, 1)


def _blend(images: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor·image + (1 − factor)·degenerate per image, clamped and truncated to uint8 as torchvision does.

    Both weights are formed in float64 and only then rounded to float32, as torchvision rounds its Python floats.
    """
    keep = _per_image(factor, images)
    mix = _per_image(1.0 - factor, images)
    # addcmul, like torchvision's add_(…, alpha=…), fuses the second product into the sum (an FMA on CPU): written
    # as a plain product plus a sum, about 1% of pixels would land one level away from torchvision's result.
    return torch.addcmul(images.float().mul_(keep), degenerate, mix).clamp_(0, 255).to(torch.uint8)


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma B×1×H×W in float, floored: the degenerate image of torchvision's saturation and contrast on uint8."""
    red, green, blue = images.unbind(dim=1)
    return red.mul(0.2989).add_(green, alpha=0.587).add_(blue, alpha=0.114).floor_().unsqueeze(1)


def identity(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    return images


def brightness(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Scale by 1 + magnitude (a blend with black)."""
    return images.float().mul_(_per_image(1.0 + magnitude, images)).clamp_(0, 255).to(torch.uint8)


def color(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Saturation: blend with the image's own grayscale by factor 1 + magnitude."""
    return _blend(images, _grayscale(images), 1.0 + magnitude)


def contrast(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean gray level by factor 1 + magnitude."""
    mean = _grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean, 1.0 + magnitude)


def sharpness(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Blend with a 3×3 smoothed copy by factor 1 + magnitude; the one-pixel border is kept, as in PIL."""
    channels, height, width = images.shape[-3:]
    if height <= 2 or width <= 2:
        return images
    kernel = torch.full((3, 3), 1.0 / 13.0, device=images.device)
    kernel[1, 1] = 5.0 / 13.0
    out = images.float()
    smooth = F.conv2d(out, kernel.expand(channels, 1, 3, 3), groups=channels).round_()
    inner = out[..., 1:-1, 1:-1]  # a view: the blend below writes into `out`
    inner.addcmul_(smooth.sub_(inner), _per_image(1.0 - (1.0 + magnitude), images))  # weight 1 − factor, fused
    return out.clamp_(0, 255).to(torch.uint8)


def posterize(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Keep the top `magnitude` bits (0..8) of every channel value."""
    bits = magnitude.long().to(images.device)
    mask = ((1 << bits) - 1) << (8 - bits)
    return images & mask.to(torch.uint8).view(-1, 1, 1, 1)


def solarize(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Invert the values at or above 255·magnitude.

    The threshold is compared in float32, which is how torchvision compares a uint8 tensor with a Python float.
    """
    threshold = _per_image(255.0 * magnitude, images)
    return torch.where(images.float() >= threshold, images.bitwise_not(), images)


def autocontrast(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Stretch each image's channels to 0..255 (torchvision's kernel already works per image and channel)."""
    return tvF.autocontrast(images)


def equalize(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """PIL-style histogram equalization per image and channel (torchvision's kernel is already per image)."""
    return tvF.equalize(images)


def invert(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    return images.bitwise_not()


PIXEL_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "identity": identity,
    "brightness": brightness,
    "color": color,
    "contrast": contrast,
    "sharpness": sharpness,
    "posterize": posterize,
    "solarize": solarize,
    "autocontrast": autocontrast,
    "equalize": equalize,
    "invert": invert,
}

# ---------------------------------------------------------------------------------------------------------------
# Geometric ops. Each builds, per image, the inverse affine matrix (2×3, output pixel → input pixel) in
# torchvision's pixel coordinates, whose origin is the image centre. All geometric ops of one layer then share a
# single grid_sample call.
# ---------------------------------------------------------------------------------------------------------------


def _matrices(*entries: torch.Tensor) -> torch.Tensor:
    """Six per-image entries (B,) of a row-major 2×3 matrix → B×2×3."""
    return torch.stack(entries, dim=1).view(-1, 2, 3)


def rotation_matrices(degrees: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Counter-clockwise rotation about the centre, like torchvision's rotate (which first wraps to 0..360°)."""
    rad = torch.deg2rad(degrees.double().remainder(360.0))
    cos, sin, zero = torch.cos(rad), torch.sin(rad), torch.zeros_like(rad)
    return _matrices(cos, -sin, zero, sin, cos, zero)


def shear_x_matrices(shear: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """x_in = x_out + shear·y_out about the top-left corner: torchvision's ShearX, whose affine call uses
    centre (0, 0) and a shear angle of atan(shear), i.e. a shear factor of exactly `shear`."""
    shear = shear.double()
    one, zero = torch.ones_like(shear), torch.zeros_like(shear)
    return _matrices(one, shear, shear * (height / 2), zero, one, zero)


def shear_y_matrices(shear: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """y_in = y_out + shear·x_out about the top-left corner (torchvision's ShearY)."""
    shear = shear.double()
    one, zero = torch.ones_like(shear), torch.zeros_like(shear)
    return _matrices(one, zero, zero, shear, one, shear * (width / 2))


def translate_x_matrices(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Shift right by `pixels`, truncated toward zero to whole pixels as torchvision's int() does."""
    shift = pixels.double().trunc()
    one, zero = torch.ones_like(shift), torch.zeros_like(shift)
    return _matrices(one, zero, -shift, zero, one, zero)


def translate_y_matrices(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Shift down by `pixels`, truncated toward zero."""
    shift = pixels.double().trunc()
    one, zero = torch.ones_like(shift), torch.zeros_like(shift)
    return _matrices(one, zero, zero, zero, one, -shift)


AFFINE_OPS: dict[str, Callable[[torch.Tensor, int, int], torch.Tensor]] = {
    "rotate": rotation_matrices,
    "shear_x": shear_x_matrices,
    "shear_y": shear_y_matrices,
    "translate_x": translate_x_matrices,
    "translate_y": translate_y_matrices,
}


def affine_warp(images: torch.Tensor, inverse: torch.Tensor, interpolation: str = "nearest") -> torch.Tensor:
    """Warp each image by its own inverse matrix (B×2×3, centred pixel coordinates); zeros outside the input.

    The sampling grid is built the way torchvision builds it (pixel coordinates through the matrix, then scaled to
    grid_sample's −1..1), so nearest-neighbour results agree with torchvision's affine and rotate.
    """
    b, _, height, width = images.shape
    xs = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, width, device=images.device)
    ys = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, height, device=images.device)
    base = torch.stack(
        [xs.expand(height, width), ys[:, None].expand(height, width), torch.ones(height, width, device=images.device)],
        dim=-1,
    ).view(1, height * width, 3)
    theta = inverse.to(device=images.device, dtype=torch.float32).transpose(1, 2)
    theta = theta / torch.tensor([0.5 * width, 0.5 * height], device=images.device)
    grid = base.expand(b, -1, -1).bmm(theta).view(b, height, width, 2)
    out = F.grid_sample(images.float(), grid, mode=interpolation, padding_mode="zeros", align_corners=False)
    return out.round_().to(torch.uint8)


def _warp_by(
    matrices: Callable[[torch.Tensor, int, int], torch.Tensor],
    images: torch.Tensor,
    magnitude: torch.Tensor,
    interpolation: str,
) -> torch.Tensor:
    height, width = images.shape[-2:]
    return affine_warp(images, matrices(magnitude, height, width), interpolation)


def rotate(images: torch.Tensor, degrees: torch.Tensor, interpolation: str = "nearest") -> torch.Tensor:
    return _warp_by(rotation_matrices, images, degrees, interpolation)


def shear_x(images: torch.Tensor, shear: torch.Tensor, interpolation: str = "nearest") -> torch.Tensor:
    return _warp_by(shear_x_matrices, images, shear, interpolation)


def shear_y(images: torch.Tensor, shear: torch.Tensor, interpolation: str = "nearest") -> torch.Tensor:
    return _warp_by(shear_y_matrices, images, shear, interpolation)


def translate_x(images: torch.Tensor, pixels: torch.Tensor, interpolation: str = "nearest") -> torch.Tensor:
    return _warp_by(translate_x_matrices, images, pixels, interpolation)


def translate_y(images: torch.Tensor, pixels: torch.Tensor, interpolation: str = "nearest") -> torch.Tensor:
    return _warp_by(translate_y_matrices, images, pixels, interpolation)


def apply_ops(
    images: torch.Tensor,
    ops: Sequence[str],
    choice: torch.Tensor,
    magnitude: torch.Tensor,
    interpolation: str = "nearest",
) -> torch.Tensor:
    """One op layer: image i gets op `ops[choice[i]]` with `magnitude[i]`; choice −1 leaves it unchanged.

    Each pixel op runs once on the images that drew it; all geometric ops share one warp.
    """
    out = images
    warp_rows: list[torch.Tensor] = []
    warp_matrices: list[torch.Tensor] = []
    height, width = images.shape[-2:]
    for k in choice.unique().tolist():
        if k < 0 or ops[k] == "identity":
            continue
        rows = (choice == k).nonzero().squeeze(1)
        if ops[k] in AFFINE_OPS:
            warp_rows.append(rows)
            warp_matrices.append(AFFINE_OPS[ops[k]](magnitude[rows], height, width))
            continue
        if out is images:
            out = images.clone()  # never write into the caller's (possibly cached) tensor
        out[rows] = PIXEL_OPS[ops[k]](images[rows], magnitude[rows])
    if warp_rows:
        rows = torch.cat(warp_rows)
        if out is images:
            out = images.clone()
        out[rows] = affine_warp(images[rows], torch.cat(warp_matrices), interpolation)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Op spaces: which ops a method draws from, and the magnitude of each bin (torchvision's tables).
# ---------------------------------------------------------------------------------------------------------------

Bins = Callable[[int, int, int], torch.Tensor]  # (num_bins, height, width) -> the magnitude of every bin


def _up_to(top: float) -> Bins:
    return lambda num_bins, height, width: torch.linspace(0.0, top, num_bins)


def _solarize_bins(num_bins: int, height: int, width: int) -> torch.Tensor:
    return torch.linspace(1.0, 0.0, num_bins)  # a threshold falling from 255 (no-op) to 0 (full inversion)


def _posterize_bins(most: int, span: int) -> Bins:
    """Bits kept, falling evenly from `most` to `most − span` over the bins, rounded to whole bits."""
    return lambda num_bins, height, width: (most - torch.arange(num_bins) / ((num_bins - 1) / span)).round()


@dataclass(frozen=True)
class OpSpec:
    name: str
    bins: Bins | None = None  # None: the op has no magnitude
    signed: bool = False  # torchvision negates the magnitude with probability 1/2


_AUTOAUGMENT_COMMON = (
    OpSpec("shear_x", _up_to(0.3), signed=True),
    OpSpec("shear_y", _up_to(0.3), signed=True),
    OpSpec("translate_x", lambda n, h, w: torch.linspace(0.0, 150.0 / 331.0 * w, n), signed=True),
    OpSpec("translate_y", lambda n, h, w: torch.linspace(0.0, 150.0 / 331.0 * h, n), signed=True),
    OpSpec("rotate", _up_to(30.0), signed=True),
    OpSpec("brightness", _up_to(0.9), signed=True),
    OpSpec("color", _up_to(0.9), signed=True),
    OpSpec("contrast", _up_to(0.9), signed=True),
    OpSpec("sharpness", _up_to(0.9), signed=True),
    OpSpec("posterize", _posterize_bins(8, 4)),
    OpSpec("solarize", _solarize_bins),
    OpSpec("autocontrast"),
    OpSpec("equalize"),
)
AUTOAUGMENT_SPACE = (*_AUTOAUGMENT_COMMON, OpSpec("invert"))
RANDAUGMENT_SPACE = (OpSpec("identity"), *_AUTOAUGMENT_COMMON)
TRIVIALAUGMENT_SPACE = (
    OpSpec("identity"),
    OpSpec("shear_x", _up_to(0.99), signed=True),
    OpSpec("shear_y", _up_to(0.99), signed=True),
    OpSpec("translate_x", _up_to(32.0), signed=True),  # 32 px whatever the image size, as in torchvision
    OpSpec("translate_y", _up_to(32.0), signed=True),
    OpSpec("rotate", _up_to(135.0), signed=True),
    OpSpec("brightness", _up_to(0.99), signed=True),
    OpSpec("color", _up_to(0.99), signed=True),
    OpSpec("contrast", _up_to(0.99), signed=True),
    OpSpec("sharpness", _up_to(0.99), signed=True),
    OpSpec("posterize", _posterize_bins(8, 6)),
    OpSpec("solarize", _solarize_bins),
    OpSpec("autocontrast"),
    OpSpec("equalize"),
)
AUGMIX_SPACE = (
    OpSpec("shear_x", _up_to(0.3), signed=True),
    OpSpec("shear_y", _up_to(0.3), signed=True),
    OpSpec("translate_x", lambda n, h, w: torch.linspace(0.0, w / 3.0, n), signed=True),
    OpSpec("translate_y", lambda n, h, w: torch.linspace(0.0, h / 3.0, n), signed=True),
    OpSpec("rotate", _up_to(30.0), signed=True),
    OpSpec("posterize", _posterize_bins(4, 4)),
    OpSpec("solarize", _solarize_bins),
    OpSpec("autocontrast"),
    OpSpec("equalize"),
    OpSpec("brightness", _up_to(0.9), signed=True),  # these four only with all_ops=True
    OpSpec("color", _up_to(0.9), signed=True),
    OpSpec("contrast", _up_to(0.9), signed=True),
    OpSpec("sharpness", _up_to(0.9), signed=True),
)
AUGMIX_PARTIAL_OPS = 9  # all_ops=False keeps the first nine


@dataclass(frozen=True)
class MagnitudeTable:
    """The magnitudes of an op space at one image size: values[op, bin] (float64), and which ops are signed."""

    names: tuple[str, ...]
    values: torch.Tensor
    signed: torch.Tensor

    @classmethod
    def build(cls, space: Sequence[OpSpec], num_bins: int, height: int, width: int) -> MagnitudeTable:
        # float32 bins widened to float64, as torchvision takes float() of its float32 linspace entries
        rows = [
            torch.zeros(num_bins, dtype=torch.float64) if op.bins is None else op.bins(num_bins, height, width).double()
            for op in space
        ]
        signed = torch.tensor([op.signed for op in space])
        return cls(tuple(op.name for op in space), torch.stack(rows), signed)

    def draw(self, op: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Magnitude of (op, bin) per image, negated for half of the signed ops (a uniform draw per image)."""
        magnitude = self.values[op, level]
        negate = self.signed[op] & (torch.rand(len(op), generator=generator) <= 0.5)
        return torch.where(negate, -magnitude, magnitude)


class _TableCache:
    """Magnitude tables depend on the image size only through a few ops; build one per size and keep it."""

    def __init__(self, space: Sequence[OpSpec], num_bins: int) -> None:
        self.space = tuple(space)
        self.num_bins = num_bins
        self._tables: dict[tuple[int, int], MagnitudeTable] = {}

    def __call__(self, height: int, width: int) -> MagnitudeTable:
        key = (height, width)
        if key not in self._tables:
            self._tables[key] = MagnitudeTable.build(self.space, self.num_bins, height, width)
        return self._tables[key]


def _check_interpolation(interpolation: str) -> str:
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    return interpolation


# ---------------------------------------------------------------------------------------------------------------
# The presets.
# ---------------------------------------------------------------------------------------------------------------


@AUGMENTATIONS.register("randaugment")
class RandAugment:
    """`num_ops` layers; in each, every image draws one of 14 ops at the fixed magnitude bin (and a random sign)."""

    def __init__(
        self, *, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31, interpolation: str = "nearest"
    ) -> None:
        if num_ops < 0:
            raise ValueError(f"num_ops must be non-negative, got {num_ops}")
        if not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"magnitude must be in [0, {num_magnitude_bins}), got {magnitude}")
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.interpolation = _check_interpolation(interpolation)
        self._tables = _TableCache(RANDAUGMENT_SPACE, num_magnitude_bins)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, height, width = images.shape
        table = self._tables(height, width)
        level = torch.full((b,), self.magnitude)
        for _ in range(self.num_ops):
            op = torch.randint(len(table.names), (b,), generator=generator)
            magnitude = table.draw(op, level, generator)
            images = apply_ops(images, table.names, op, magnitude, self.interpolation)
        return images


@AUGMENTATIONS.register("trivialaugment")
class TrivialAugmentWide:
    """One op per image, from 14, at a uniformly drawn magnitude bin of the wide ranges."""

    def __init__(self, *, num_magnitude_bins: int = 31, interpolation: str = "nearest") -> None:
        self.num_magnitude_bins = num_magnitude_bins
        self.interpolation = _check_interpolation(interpolation)
        self._tables = _TableCache(TRIVIALAUGMENT_SPACE, num_magnitude_bins)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, height, width = images.shape
        table = self._tables(height, width)
        op = torch.randint(len(table.names), (b,), generator=generator)
        level = torch.randint(self.num_magnitude_bins, (b,), generator=generator)
        return apply_ops(images, table.names, op, table.draw(op, level, generator), self.interpolation)


# Sub-policies: two (op, probability, magnitude bin out of 10) each; bin None for ops without a magnitude.
Policy = tuple[tuple[tuple[str, float, int | None], tuple[str, float, int | None]], ...]

IMAGENET_POLICY: Policy = (
    (("posterize", 0.4, 8), ("rotate", 0.6, 9)),
    (("solarize", 0.6, 5), ("autocontrast", 0.6, None)),
    (("equalize", 0.8, None), ("equalize", 0.6, None)),
    (("posterize", 0.6, 7), ("posterize", 0.6, 6)),
    (("equalize", 0.4, None), ("solarize", 0.2, 4)),
    (("equalize", 0.4, None), ("rotate", 0.8, 8)),
    (("solarize", 0.6, 3), ("equalize", 0.6, None)),
    (("posterize", 0.8, 5), ("equalize", 1.0, None)),
    (("rotate", 0.2, 3), ("solarize", 0.6, 8)),
    (("equalize", 0.6, None), ("posterize", 0.4, 6)),
    (("rotate", 0.8, 8), ("color", 0.4, 0)),
    (("rotate", 0.4, 9), ("equalize", 0.6, None)),
    (("equalize", 0.0, None), ("equalize", 0.8, None)),
    (("invert", 0.6, None), ("equalize", 1.0, None)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("rotate", 0.8, 8), ("color", 1.0, 2)),
    (("color", 0.8, 8), ("solarize", 0.8, 7)),
    (("sharpness", 0.4, 7), ("invert", 0.6, None)),
    (("shear_x", 0.6, 5), ("equalize", 1.0, None)),
    (("color", 0.4, 0), ("equalize", 0.6, None)),
    (("equalize", 0.4, None), ("solarize", 0.2, 4)),
    (("solarize", 0.6, 5), ("autocontrast", 0.6, None)),
    (("invert", 0.6, None), ("equalize", 1.0, None)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("equalize", 0.8, None), ("equalize", 0.6, None)),
)

CIFAR10_POLICY: Policy = (
    (("invert", 0.1, None), ("contrast", 0.2, 6)),
    (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
    (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
    (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.5, None), ("equalize", 0.9, None)),
    (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
    (("color", 0.4, 3), ("brightness", 0.6, 7)),
    (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
    (("equalize", 0.6, None), ("equalize", 0.5, None)),
    (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
    (("color", 0.7, 7), ("translate_x", 0.5, 8)),
    (("equalize", 0.3, None), ("autocontrast", 0.4, None)),
    (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)),
    (("brightness", 0.9, 6), ("color", 0.2, 8)),
    (("solarize", 0.5, 2), ("invert", 0.0, None)),
    (("equalize", 0.2, None), ("autocontrast", 0.6, None)),
    (("equalize", 0.2, None), ("equalize", 0.6, None)),
    (("color", 0.9, 9), ("equalize", 0.6, None)),
    (("autocontrast", 0.8, None), ("solarize", 0.2, 8)),
    (("brightness", 0.1, 3), ("color", 0.7, 0)),
    (("solarize", 0.4, 5), ("autocontrast", 0.9, None)),
    (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.9, None), ("solarize", 0.8, 3)),
    (("equalize", 0.8, None), ("invert", 0.1, None)),
    (("translate_y", 0.7, 9), ("autocontrast", 0.9, None)),
)

POLICIES: dict[str, Policy] = {"imagenet": IMAGENET_POLICY, "cifar10": CIFAR10_POLICY}


@AUGMENTATIONS.register("autoaugment")
class AutoAugment:
    """Every image draws one of the policy's 25 sub-policies; each of its two ops then fires with its own
    probability, drawn per image."""

    def __init__(self, *, policy: str = "imagenet", interpolation: str = "nearest") -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown AutoAugment policy {policy!r}; choose from: {', '.join(POLICIES)}")
        self.policy = policy
        self.interpolation = _check_interpolation(interpolation)
        self._tables = _TableCache(AUTOAUGMENT_SPACE, 10)
        names = [op.name for op in AUTOAUGMENT_SPACE]
        steps = POLICIES[policy]
        self._ops = torch.tensor([[names.index(name) for name, _, _ in pair] for pair in steps])
        # float32 like torchvision's `torch.rand(()) <= p`, which compares in float32
        self._probability = torch.tensor([[p for _, p, _ in pair] for pair in steps], dtype=torch.float32)
        self._bins = torch.tensor([[level or 0 for _, _, level in pair] for pair in steps])

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, height, width = images.shape
        table = self._tables(height, width)
        pick = torch.randint(len(self._ops), (b,), generator=generator)
        for step in range(2):
            op = self._ops[pick, step]
            fires = torch.rand(b, generator=generator) <= self._probability[pick, step]
            magnitude = table.draw(op, self._bins[pick, step], generator)
            images = apply_ops(images, table.names, torch.where(fires, op, -1), magnitude, self.interpolation)
        return images


@AUGMENTATIONS.register("autoaugment_cifar10")
class AutoAugmentCifar10(AutoAugment):
    """AutoAugment with the CIFAR-10 policy."""

    def __init__(self, *, interpolation: str = "nearest") -> None:
        super().__init__(policy="cifar10", interpolation=interpolation)


@AUGMENTATIONS.register("augmix")
class AugMix:
    """Mix each image with `width` chains of 1..3 random ops (or `depth` ops), all drawn per image.

    Weights: the original gets m and the chains (1 − m)·w_i, with m ~ Beta(alpha, alpha) and w ~ Dirichlet(alpha),
    per image. Op magnitudes use the first `severity` of 10 bins. Warps are bilinear, torchvision's AugMix default.
    """

    MAX_DEPTH = 3  # a random depth is drawn from 1..3

    def __init__(
        self,
        *,
        severity: int = 3,
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        all_ops: bool = True,
        interpolation: str = "bilinear",
    ) -> None:
        if not 1 <= severity <= 10:
            raise ValueError(f"severity must be in [1, 10], got {severity}")
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.severity = severity
        self.width = width
        self.depth = depth
        self.alpha = alpha
        self.interpolation = _check_interpolation(interpolation)
        space = AUGMIX_SPACE if all_ops else AUGMIX_SPACE[:AUGMIX_PARTIAL_OPS]
        self._tables = _TableCache(space, 10)

    def mixing_weights(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """B×(1 + width) float32: the original's weight, then each chain's; rows sum to 1.

        torch._sample_dirichlet (the sampler torchvision's AugMix uses) accepts a generator, so the weights come
        from the loader's generator like every other draw, and the global RNG is neither used nor disturbed.
        Beta(α, α) is the first coordinate of a two-way Dirichlet(α, α), as in torchvision.
        """
        concentration = torch.tensor(float(self.alpha))
        original = torch._sample_dirichlet(concentration.expand(batch, 2).contiguous(), generator=generator)
        chains = torch._sample_dirichlet(concentration.expand(batch, self.width).contiguous(), generator=generator)
        return torch.cat([original[:, :1], chains * original[:, 1:]], dim=1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, channels, height, width = images.shape
        table = self._tables(height, width)
        weights = self.mixing_weights(b, generator).to(images.device)
        # All chains run side by side as one batch of width·B images (chain-major), so an op layer covers every
        # chain at once: per-op call overhead is paid `depth` times instead of width·depth times.
        chains = self.width * b
        layers = self.depth if self.depth > 0 else self.MAX_DEPTH
        if self.depth > 0:
            depth = torch.full((chains,), layers)
        else:
            depth = torch.randint(1, self.MAX_DEPTH + 1, (chains,), generator=generator)
        augmented = images.repeat(self.width, 1, 1, 1)
        for layer in range(layers):
            op = torch.randint(len(table.names), (chains,), generator=generator)
            level = torch.randint(self.severity, (chains,), generator=generator)
            magnitude = table.draw(op, level, generator)
            choice = torch.where(layer < depth, op, -1)  # shorter chains skip their later layers
            augmented = apply_ops(augmented, table.names, choice, magnitude, self.interpolation)
        per_chain = augmented.view(self.width, b, channels, height, width).float()
        chain_weights = weights[:, 1:].t().reshape(self.width, b, 1, 1, 1)
        mix = (per_chain * chain_weights).sum(0).add_(images.float() * weights[:, :1].view(-1, 1, 1, 1))
        # Rounded rather than truncated (torchvision truncates): weights summing to 1 in float32 would otherwise
        # turn an untouched 100 into 99 now and then.
        return mix.round_().clamp_(0, 255).to(torch.uint8)
