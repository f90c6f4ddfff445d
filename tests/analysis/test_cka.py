"""Minibatch linear CKA with the unbiased HSIC estimator."""

import math

import pytest
import torch

from synthgap.analysis.cka import MinibatchCKA, gram, hsic_unbiased, linear_cka, minibatch_cka


def planted(n: int = 2048, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two representations sharing a 20-dimensional signal under different linear maps and independent noise."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 20, generator=g)
    x = z @ torch.randn(20, 300, generator=g) + 2 * torch.randn(n, 300, generator=g)
    y = z @ torch.randn(20, 200, generator=g) + 2 * torch.randn(n, 200, generator=g)
    return x, y


def test_cka_of_a_representation_with_itself_is_one():
    x, _ = planted(256)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert minibatch_cka(x, x, 64) == pytest.approx(1.0, abs=1e-9)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    x, y = planted(512)
    q, _ = torch.linalg.qr(torch.randn(300, 300, generator=torch.Generator().manual_seed(1)))
    reference = minibatch_cka(x, y, 128)
    assert minibatch_cka(x @ q, y, 128) == pytest.approx(reference, abs=1e-5)
    assert minibatch_cka(7.5 * x, 0.01 * y, 128) == pytest.approx(reference, abs=1e-5)
    assert minibatch_cka(x + 3.0, y - 100.0, 128) == pytest.approx(reference, abs=1e-4)  # a common shift, too


def test_minibatch_cka_matches_the_full_batch_value():
    """Tolerance: 0.01 at batches of 256 and 0.02 at 64 (2,048 images, true CKA ≈ 0.88). The unbiased terms make the
    minibatch sums consistent; what is left is sampling noise of order 1/sqrt(batches · batch size)."""
    x, y = planted()
    full = linear_cka(x, y)
    assert 0.8 < full < 0.95
    assert minibatch_cka(x, y, 256) == pytest.approx(full, abs=0.01)
    assert minibatch_cka(x, y, 64) == pytest.approx(full, abs=0.02)


def test_unbiased_minibatch_cka_of_independent_representations_is_near_zero_unlike_the_biased_one():
    """Why the unbiased estimator: the biased one scores unrelated high-dimensional features near 0.9 at batch 64."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(1024, 1000, generator=g), torch.randn(1024, 1000, generator=g)
    assert abs(minibatch_cka(x, y, 64)) < 0.02
    biased = [linear_cka(x[i : i + 64], y[i : i + 64], unbiased=False) for i in range(0, 1024, 64)]
    assert sum(biased) / len(biased) > 0.5


def test_hsic_is_unchanged_by_centring_and_small_batches_are_skipped():
    x, y = planted(64)
    raw = hsic_unbiased((x @ x.T).double(), (y @ y.T).double())
    assert hsic_unbiased(gram(x), gram(y)) == pytest.approx(raw, rel=1e-4)
    sums = MinibatchCKA()
    sums.update(gram(x[:3]), gram(y[:3]))
    assert sums.batches == 0 and math.isnan(sums.value)
    with pytest.raises(ValueError, match="at least 4"):
        hsic_unbiased(gram(x[:3]), gram(y[:3]))


def test_feature_maps_are_flattened():
    maps = torch.randn(16, 4, 3, 3, generator=torch.Generator().manual_seed(3))
    assert gram(maps).shape == (16, 16)
    assert linear_cka(maps, maps.flatten(1)) == pytest.approx(1.0, abs=1e-9)
