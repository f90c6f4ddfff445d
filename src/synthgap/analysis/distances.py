"""Distances between two image sets in one network's feature space (pooled features of one layer).

These are the measures behind FID, KID and improved precision/recall, but on a *student's* layer-N features, not an
Inception network's: call them "FD on the R student's layer-N features", never FID.

- `frechet_distance`: ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½) between Gaussian fits (float64 but for the
  covariance products; matrix square roots via symmetric eigendecompositions, so no complex parts and no scipy).
  Needs many more images than feature dimensions to be trustworthy: its bias grows with dims / images
  (`enough_for_fd`).
- `kernel_distance`: the unbiased MMD² of KID (Bińkowski et al. 2018) with the cubic polynomial kernel
  k(x, y) = (xᵀy / d + 1)³, averaged over disjoint blocks of about 1,000 images per set (one block when a set is
  smaller than two blocks), whose spread gives a standard error. The kernel is not scale-free, so both sets are
  first divided by one scalar, the root mean square of all their feature values (`common_scale`): xᵀy / d is then
  at most about 1 at every layer, whatever its units. No centring: subtracting a mean measured on one of the
  samples would bias the U-statistic (its within-set pairs would then average below zero), and KID does not centre.
- `precision_recall`: improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of
  balls around its points with radius the distance to the point's k-th nearest neighbour in its own set (k = 3);
  precision = share of the other set's points inside the reference manifold, recall = share of the reference points
  inside the other set's manifold. Euclidean. Its cost grows with the square of the images, so sets above
  `PR_MAX_IMAGES` are replaced by a seeded subset of that size (the rows record the counts used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from synthgap.neighbours import DISTANCE_CHUNK, kth_neighbour_radius

FD_MIN_IMAGES_PER_DIM = 2  # FD only when both sets have at least this many images per feature dimension
KID_BLOCK = 1000  # images per set in one KID block (the subset size of Bińkowski et al.)
KNN_K = 3  # neighbourhood size of the precision/recall manifolds (Kynkäänniemi et al.)
PR_MAX_IMAGES = 2000  # images per set for precision/recall (a seeded subset above): its cost grows with n²


def enough_for_fd(n_a: int, n_b: int, dims: int) -> bool:
    return min(n_a, n_b) >= FD_MIN_IMAGES_PER_DIM * dims


def _sym_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


@dataclass(frozen=True)
class FrechetResult:
    value: float
    mean_term: float  # ‖μ₁ − μ₂‖²
    covariance_term: float  # the trace term
    reference_variance: float  # tr Σ of the first (reference) set: FD / this is comparable across layers

    @property
    def relative(self) -> float:
        return self.value / self.reference_variance if self.reference_variance > 0 else math.nan


def _covariance(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance (float64) of rows centred in float64 and multiplied in float32 (twice as fast; the
    centred values keep 7 digits, well beyond what FD's sampling noise leaves)."""
    centred = (x.double() - mean).float()
    return (centred.T @ centred).double() / max(len(x) - 1, 1)


def frechet_distance(reference: torch.Tensor, other: torch.Tensor) -> FrechetResult:
    """Fréchet distance between Gaussian fits of two N×D feature sets (unbiased covariances)."""
    mu_a, mu_b = reference.double().mean(dim=0), other.double().mean(dim=0)
    cov_a, cov_b = _covariance(reference, mu_a), _covariance(other, mu_b)
    root_a = _sym_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    mean_term = float((mu_a - mu_b).pow(2).sum())
    covariance_term = float(torch.trace(cov_a) + torch.trace(cov_b) - 2 * trace_root)
    return FrechetResult(mean_term + covariance_term, mean_term, covariance_term, float(torch.trace(cov_a)))


def common_scale(*sets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """All sets divided by one scalar: the root mean square of every feature value of every set."""
    squares = sum(x.double().pow(2).sum() for x in sets)
    scale = (squares / sum(x.numel() for x in sets)).sqrt().clamp_min(1e-12)
    return tuple(x.double() / scale for x in sets)


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² with the cubic polynomial kernel (each set needs at least 2 points). Kernel values in the
    inputs' dtype (values near 1: float32 keeps 7 digits), their sums in float64."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD² needs at least 2 points per set, got {m} and {n}")
    kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    f64 = torch.float64
    xx = (kxx.sum(dtype=f64) - kxx.diagonal().sum(dtype=f64)) / (m * (m - 1))
    yy = (kyy.sum(dtype=f64) - kyy.diagonal().sum(dtype=f64)) / (n * (n - 1))
    return float(xx + yy - 2 * kxy.sum(dtype=f64) / (m * n))


@dataclass(frozen=True)
class KernelResult:
    value: float  # mean unbiased MMD² over the blocks
    standard_error: float | None  # std over blocks / √blocks (None: one block)
    blocks: int
    block_images: tuple[int, int]  # images of (reference, other) in each block


def kernel_distance(
    reference: torch.Tensor, other: torch.Tensor, *, block_size: int = KID_BLOCK, seed: int = 0
) -> KernelResult:
    """KID's estimator on `common_scale`d features, over disjoint blocks.

    Both sets are shuffled (seeded) and cut into the same number of disjoint blocks, as many as the smaller set fills
    with `block_size` images (at least one; a block holds at most 2 × `block_size` images of either set); block i of
    one set is compared with block i of the other. Disjoint blocks give independent estimates, so their spread gives
    a standard error, and the cost grows only linearly with the images.
    """
    a, b = (x.float() for x in common_scale(reference, other))
    blocks = max(1, min(len(a), len(b)) // block_size)
    size_a, size_b = (min(len(x) // blocks, 2 * block_size) for x in (a, b))
    generator = torch.Generator().manual_seed(seed)
    order_a = torch.randperm(len(a), generator=generator).to(a.device)
    order_b = torch.randperm(len(b), generator=generator).to(b.device)
    values = torch.tensor(
        [
            mmd2_unbiased(a[order_a[i * size_a : (i + 1) * size_a]], b[order_b[i * size_b : (i + 1) * size_b]])
            for i in range(blocks)
        ],
        dtype=torch.float64,
    )
    error = float(values.std() / blocks**0.5) if blocks > 1 else None
    return KernelResult(float(values.mean()), error, blocks, (size_a, size_b))


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float  # share of the other set inside the reference manifold
    recall: float  # share of the reference set inside the other set's manifold
    k: int
    images: tuple[int, int]  # points of (reference, other) used


def precision_recall(
    reference: torch.Tensor,
    other: torch.Tensor,
    *,
    k: int = KNN_K,
    max_images: int | None = PR_MAX_IMAGES,
    seed: int = 0,
) -> PrecisionRecall:
    """Improved precision and recall of `other` against `reference` (each set needs more than k points); sets larger
    than `max_images` are replaced by a seeded random subset of that size."""
    if min(len(reference), len(other)) <= k:
        raise ValueError(f"k-NN manifolds with k = {k} need more than {k} points per set")
    generator = torch.Generator().manual_seed(seed)
    a, b = (_at_most(x.float(), max_images, generator) for x in (reference, other))
    radius_a, radius_b = kth_neighbour_radius(a, k), kth_neighbour_radius(b, k)
    # One pass over the cross distances: row minima give recall (a in b's balls), column minima precision.
    recalled, closest = [], torch.full((len(b),), torch.inf, device=b.device)
    for start in range(0, len(a), DISTANCE_CHUNK):
        distances = torch.cdist(a[start : start + DISTANCE_CHUNK], b)
        recalled.append((distances - radius_b[None, :]).amin(dim=1) <= 0)
        margin = (distances - radius_a[start : start + DISTANCE_CHUNK, None]).amin(dim=0)
        closest = torch.minimum(closest, margin)
    precision = (closest <= 0).double().mean().item()
    recall = torch.cat(recalled).double().mean().item()
    return PrecisionRecall(precision, recall, k, (len(a), len(b)))


def _at_most(x: torch.Tensor, count: int | None, generator: torch.Generator) -> torch.Tensor:
    if count is None or len(x) <= count:
        return x
    return x[torch.randperm(len(x), generator=generator)[:count].to(x.device)]
