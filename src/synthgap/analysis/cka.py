"""Linear CKA between two representations of the same images, computed in minibatches.

CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L)) with linear kernels K = X Xᵀ, L = Y Yᵀ (Kornblith et al.
2019). The activations are flattened (C·H·W or T·D numbers per image), so a Gram matrix is n×n per minibatch and the
whole test set never has to be held.

Estimator (the choice): the *unbiased* HSIC estimator of Song et al. (2012), accumulated over minibatches as in
Nguyen, Raghu & Kornblith (2021, "Do wide and deep networks learn the same things?"):

    minibatch CKA = Σ_b HSIC_1(K_b, L_b) / sqrt(Σ_b HSIC_1(K_b, K_b) · Σ_b HSIC_1(L_b, L_b))

Why this one: each minibatch's HSIC_1 is an unbiased estimate of the population HSIC, so the sums converge to the
population values and their ratio is a consistent estimate of CKA that does not depend on the minibatch size. The
usual biased estimator tr(K H L H) / (n − 1)² carries an O(1/n) bias that, with high-dimensional activations, is
large at minibatch sizes (two independent 1,000-dimensional Gaussian representations score a biased CKA near 0.9 in
batches of 64 and an unbiased one near 0; `tests/analysis/test_cka.py`), so a biased minibatch CKA would measure
the batch size as much as the networks. The "debiased" CKA of Kornblith's code base is the same estimator.

Numerics: activations are centred per minibatch before the Gram matrix (HSIC_1 is unchanged by adding a constant
vector to every row, and centring removes the large common offset of ReLU outputs), the Gram is taken in float32,
and HSIC_1 in float64. Batches with fewer than 4 images are skipped (the estimator divides by n(n − 3)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MIN_BATCH = 4  # HSIC_1 needs n > 3
CKA_DEFINITION = (
    "linear CKA of the two networks' flattened layer outputs on the real test images: unbiased HSIC (Song et al. "
    "2012) summed over minibatches (Nguyen et al. 2021); 1 = the same up to rotation and scale"
)


def gram(activation: torch.Tensor) -> torch.Tensor:
    """The linear-kernel Gram matrix (float64, n×n) of a batch's flattened, batch-centred activations."""
    x = activation.flatten(1).float()
    x = x - x.mean(dim=0, keepdim=True)
    return (x @ x.T).double()


def hsic_unbiased(kx: torch.Tensor, ky: torch.Tensor) -> float:
    """HSIC_1 of Song et al. (2012): an unbiased estimate of HSIC from two n×n kernel matrices (n >= 4)."""
    n = kx.shape[0]
    if n < MIN_BATCH:
        raise ValueError(f"the unbiased HSIC estimator needs at least {MIN_BATCH} samples, got {n}")
    kx = kx.double().clone()
    ky = ky.double().clone()
    kx.fill_diagonal_(0)
    ky.fill_diagonal_(0)
    trace = (kx * ky).sum()  # tr(K L) for symmetric matrices
    sums = kx.sum() * ky.sum() / ((n - 1) * (n - 2))
    cross = 2.0 * (kx.sum(dim=0) @ ky.sum(dim=1)) / (n - 2)  # 2 · 1ᵀ K L 1 / (n − 2)
    return float((trace + sums - cross) / (n * (n - 3)))


def hsic_biased(kx: torch.Tensor, ky: torch.Tensor) -> float:
    """tr(K H L H) / (n − 1)²: the plug-in estimator (for comparison only; biased at small n)."""
    n = kx.shape[0]
    h = torch.eye(n, dtype=torch.float64, device=kx.device) - 1.0 / n
    return float(torch.trace(kx.double() @ h @ ky.double() @ h) / (n - 1) ** 2)


def linear_cka(x: torch.Tensor, y: torch.Tensor, *, unbiased: bool = True) -> float:
    """Linear CKA of two representations (rows = the same images) in one batch."""
    kx, ky = gram(x), gram(y)
    hsic = hsic_unbiased if unbiased else hsic_biased
    return _ratio(hsic(kx, ky), hsic(kx, kx), hsic(ky, ky))


def _ratio(xy: float, xx: float, yy: float) -> float:
    if xx <= 0 or yy <= 0:
        return math.nan  # a representation without (estimated) variance: CKA is undefined
    return xy / math.sqrt(xx * yy)


@dataclass
class MinibatchCKA:
    """Running sums of HSIC_1 over minibatches of one pair of representations (Nguyen et al. 2021)."""

    xy: float = 0.0
    xx: float = 0.0
    yy: float = 0.0
    batches: int = 0
    images: int = 0

    def update(self, kx: torch.Tensor, ky: torch.Tensor) -> None:
        """Add one minibatch, given the Gram matrices (`gram`) of both representations of the same images."""
        if kx.shape[0] >= MIN_BATCH:
            self.add(hsic_unbiased(kx, ky), hsic_unbiased(kx, kx), hsic_unbiased(ky, ky), kx.shape[0])

    def add(self, xy: float, xx: float, yy: float, images: int) -> None:
        """Add one minibatch's three HSIC_1 terms (a representation's own term can be shared by several pairs)."""
        self.xy += xy
        self.xx += xx
        self.yy += yy
        self.batches += 1
        self.images += images

    @property
    def value(self) -> float:
        return _ratio(self.xy, self.xx, self.yy) if self.batches else math.nan


def minibatch_cka(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Minibatch CKA of two in-memory representations, batches in row order (for tests and small data)."""
    cka = MinibatchCKA()
    for start in range(0, len(x), batch_size):
        cka.update(gram(x[start : start + batch_size]), gram(y[start : start + batch_size]))
    return cka.value
