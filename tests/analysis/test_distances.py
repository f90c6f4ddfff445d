"""Fréchet distance, KID's kernel MMD² and k-NN precision/recall on planted cases."""

import pytest
import torch

from synthgap.analysis.distances import enough_for_fd, frechet_distance, kernel_distance, precision_recall


def gaussian(n: int, dims: int = 16, seed: int = 0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, dims, generator=torch.Generator().manual_seed(seed)) + shift


def test_fd_is_near_zero_between_halves_of_one_set_and_grows_with_a_mean_shift():
    data = gaussian(4000)
    same = frechet_distance(data[:2000], data[2000:]).value
    assert 0 <= same < 0.2  # sampling noise only (16 dims, 2,000 images per half)
    shifted = [frechet_distance(data[:2000], data[2000:] + s).value for s in (0.5, 1.0, 2.0)]
    assert same < shifted[0] < shifted[1] < shifted[2]
    assert shifted[2] - same == pytest.approx(16 * 2.0**2, rel=0.05)  # ‖δ‖² of a shift of 2 in 16 dimensions


def test_fd_sees_a_covariance_change_and_reports_its_terms():
    a, b = gaussian(3000, seed=1), 2.0 * gaussian(3000, seed=2)
    fd = frechet_distance(a, b)
    assert fd.covariance_term == pytest.approx(16 * (1 - 2) ** 2, rel=0.1)  # tr(Σa + Σb − 2(ΣaΣb)^½) = 16·(1 − 2)²
    assert fd.mean_term < 0.05
    assert fd.relative == pytest.approx(fd.value / fd.reference_variance)


def test_fd_needs_images_per_dimension():
    assert enough_for_fd(1000, 2000, 500)
    assert not enough_for_fd(999, 2000, 500)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    data = gaussian(4000, seed=3)
    same = kernel_distance(data[:2000], data[2000:], block_size=400)
    assert same.blocks == 5 and same.block_images == (400, 400) and same.standard_error is not None
    assert abs(same.value) < 0.01  # over 40 seeds: mean −0.0002, spread 0.003 (and the standard errors ≈ 0.003)
    shifted = [kernel_distance(data[:2000], data[2000:] + s, block_size=400).value for s in (0.5, 1.0)]
    assert same.value < shifted[0] < shifted[1]
    assert shifted[0] > 10 * abs(same.value)


def test_kid_blocks_are_disjoint_and_use_the_images():
    one = kernel_distance(gaussian(50, seed=4), gaussian(40, seed=5), block_size=100)
    assert one.blocks == 1 and one.block_images == (50, 40) and one.standard_error is None
    uneven = kernel_distance(gaussian(5000, dims=2, seed=4), gaussian(1100, dims=2, seed=5), block_size=500)
    assert uneven.blocks == 2 and uneven.block_images == (1000, 550)  # at most 2 × block_size per block


def test_precision_and_recall_on_planted_cases():
    real = gaussian(1000, dims=4, seed=6)
    same = precision_recall(real, gaussian(1000, dims=4, seed=7))
    assert same.precision > 0.85 and same.recall > 0.85
    far = precision_recall(real, gaussian(1000, dims=4, seed=8, shift=20.0))
    assert far.precision == 0.0 and far.recall == 0.0
    # mode collapse: synthetic images all near the real centre are realistic (precision) but cover little (recall)
    collapsed = precision_recall(real, 0.1 * gaussian(1000, dims=4, seed=9))
    assert collapsed.precision > 0.95 and collapsed.recall < 0.3


def test_precision_recall_matches_a_direct_count_and_subsamples_large_sets():
    a, b = gaussian(60, dims=3, seed=10), gaussian(50, dims=3, seed=11, shift=0.7)
    radius_a = torch.cdist(a, a).sort(dim=1).values[:, 3]  # 3rd nearest other point (index 0 is the point itself)
    radius_b = torch.cdist(b, b).sort(dim=1).values[:, 3]
    cross = torch.cdist(b, a)
    precision = (cross <= radius_a[None, :]).any(dim=1).double().mean().item()
    recall = (cross.T <= radius_b[None, :]).any(dim=1).double().mean().item()
    result = precision_recall(a, b)
    assert (result.precision, result.recall) == pytest.approx((precision, recall))
    assert result.images == (60, 50)
    assert precision_recall(a, b, max_images=40).images == (40, 40)
