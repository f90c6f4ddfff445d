from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synthgap.data.transforms import (
    AUGMENTATIONS,
    NORMALIZATIONS,
    build_augmentation,
    get_normalization,
    random_crop_with_padding,
    random_cutout,
    random_hflip,
    random_resized_crop,
    random_resized_crop_boxes,
)
from synthgap.errors import SynthgapError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def images():
    return torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=gen(123))


def test_crop_with_padding_is_window_of_padded_input(images):
    padding = 2
    out = random_crop_with_padding(images, padding, gen())
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (padding,) * 4)
    offsets = set()
    for i in range(len(images)):
        matches = [
            (dy, dx)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert len(matches) == 1, i
        offsets.add(matches[0])
    assert len(offsets) > 1  # windows are drawn per image


def test_crop_with_zero_padding_is_identity(images):
    assert torch.equal(random_crop_with_padding(images, 0, gen()), images)


def test_hflip_probability_one_and_zero(images):
    assert torch.equal(random_hflip(images, gen(), p=1.0), images.flip(-1))
    assert torch.equal(random_hflip(images, gen(), p=0.0), images)


def test_cutout_zeroes_one_square_per_image_cut_off_at_the_borders():
    ones = torch.full((200, 3, 8, 8), 255, dtype=torch.uint8)
    out = random_cutout(ones, 4, gen())
    zeroed = (out == 0).all(dim=1)  # every channel of a cut pixel
    assert torch.equal((out == 0).any(dim=1), zeroed)
    counts = zeroed.flatten(1).sum(dim=1)
    assert counts.max() == 16 and counts.min() >= 4  # a whole 4×4 square inside, at least a 2×2 corner at an edge
    for mask in zeroed[:20]:  # one contiguous rectangle
        rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
        assert mask.sum() == len(rows) * len(cols) and int(rows[-1] - rows[0]) + 1 == len(rows)


def test_resized_crop_boxes_inside_image_and_within_scale():
    height, width, scale = 100, 150, (0.25, 0.5)
    boxes = random_resized_crop_boxes(2000, height, width, gen(), scale=scale)
    x1, y1, x2, y2 = boxes.unbind(1)
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= width).all() and (y2 <= height).all()
    w, h = x2 - x1, y2 - y1
    area = w * h / (height * width)
    assert area.min() >= scale[0] * 0.97 and area.max() <= scale[1] * 1.03  # crop sides are rounded to pixels
    assert (w / h).min() >= 0.75 * 0.97 and (w / h).max() <= 4 / 3 * 1.03
    assert area.max() - area.min() > 0.2  # the whole scale range is used
    default = random_resized_crop_boxes(500, height, width, gen())
    assert (default[:, :2] >= 0).all() and (default[:, 2] <= width).all() and (default[:, 3] <= height).all()


def test_resized_crop_shape_dtype_and_full_crop_keeps_image():
    y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    ramp = (4 * x + 3 * y).to(torch.uint8).expand(3, 3, 32, 32).contiguous()
    out = random_resized_crop(ramp, gen(), scale=(1.0, 1.0))
    assert out.shape == ramp.shape and out.dtype == torch.uint8
    assert (out.int() - ramp.int()).abs().max() <= 1
    cropped = random_resized_crop(ramp, gen(), scale=(0.1, 0.2))
    assert not torch.equal(cropped, ramp)


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_augmentation_presets_uint8_same_shape_and_seeded(images, name):
    augment = build_augmentation(name)
    out = augment(images, gen(5))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, augment(images, gen(5)))
    if name != "none":
        assert not torch.equal(out, augment(images, gen(6)))


@pytest.mark.parametrize("name", sorted(NORMALIZATIONS))
def test_normalization_values(name):
    norm = get_normalization(name)
    images = torch.zeros(2, 3, 2, 2, dtype=torch.uint8)
    images[..., 0, :] = 255
    out = norm(images)
    assert out.dtype == torch.float32 and out.shape == images.shape
    for c in range(3):
        assert torch.allclose(out[:, c, 0], torch.tensor((1 - norm.mean[c]) / norm.std[c]), atol=1e-5)
        assert torch.allclose(out[:, c, 1], torch.tensor(-norm.mean[c] / norm.std[c]), atol=1e-5)


def test_unknown_names_raise():
    with pytest.raises(SynthgapError, match="normalization"):
        get_normalization("bogus")
    with pytest.raises(SynthgapError, match="augmentation"):
        build_augmentation("bogus")
