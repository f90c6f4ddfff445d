"""Texture- and shape-keeping test-image variants and the texture-reliance score."""

import math

import pytest
import torch

from synthgap.data.cues import CueVariants, edge_map, grayscale_blur, luma, patch_shuffle, texture_reliance


def noise(b=4, h=32, w=32, seed=0):
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_grayscale_blur_is_gray_smoother_and_keeps_flat_images():
    images = noise()
    out = grayscale_blur(images, sigma=1.0)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert out.float().std() < 0.5 * luma(images).std()  # blur removes most pixel-level texture
    flat = torch.full((2, 3, 16, 16), 90, dtype=torch.uint8)
    assert torch.equal(grayscale_blur(flat, sigma=2.0), flat)  # borders replicated, not darkened
    with pytest.raises(ValueError, match="sigma"):
        grayscale_blur(images, sigma=0)


def test_edge_map_marks_a_step_dark_on_white():
    step = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    step[..., 4:] = 255
    edges = edge_map(step)
    assert edges.dtype == torch.uint8 and edges.shape == step.shape
    assert edges[0, 0, :, 3:5].max() == 0  # the strongest gradient is black
    assert edges[0, 0, :, 0].min() == 255 and edges[0, 0, :, 7].min() == 255  # flat regions white
    assert edge_map(torch.full((1, 3, 8, 8), 7, dtype=torch.uint8)).min() == 255  # a flat image: no NaN, all white


def test_patch_shuffle_permutes_whole_patches_per_image():
    images = noise(b=3)
    out = patch_shuffle(images, 4, torch.Generator().manual_seed(0))

    def patches(x):
        return sorted(
            tuple(x[:, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8].flatten().tolist()) for r in range(4) for c in range(4)
        )

    for before, after in zip(images, out, strict=True):
        assert patches(before) == patches(after)
        assert not torch.equal(before, after)
    again = patch_shuffle(images, 4, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    same = patch_shuffle(images[:1].expand(3, -1, -1, -1), 4, torch.Generator().manual_seed(1))
    assert not torch.equal(same[0], same[1])  # each image gets its own order
    with pytest.raises(ValueError, match="divide"):
        patch_shuffle(images, 5, torch.Generator())


def test_cue_variants_are_fixed_by_their_seed():
    images = noise()
    first, second = CueVariants(seed=3).apply(images), CueVariants(seed=3).apply(images)
    assert set(first) == {"grayscale_blur", "edges", "patch_shuffle"}
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_texture_reliance_score():
    assert texture_reliance({"grayscale_blur": 60, "edges": 40, "patch_shuffle": 10}, 10) == 0.0
    assert texture_reliance({"grayscale_blur": 10, "edges": 5, "patch_shuffle": 50}, 10) == 1.0
    # shape 50 − 10 = 40 above chance, texture 30 − 10 = 20: a third of the recognisable signal is texture
    assert texture_reliance({"grayscale_blur": 60, "edges": 40, "patch_shuffle": 30}, 10) == pytest.approx(1 / 3)
    assert math.isnan(texture_reliance({"grayscale_blur": 9, "edges": 10, "patch_shuffle": 8}, 10))
