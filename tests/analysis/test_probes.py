"""Linear probes recover a planted linear signal and stay at chance without one."""

import torch
import torch.nn.functional as F

from synthgap.analysis.probes import loss_and_gradients, probe_top1


def _split(x: torch.Tensor, y: torch.Tensor, n_train: int):
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_probe_recovers_linearly_separable_classes():
    g = torch.Generator().manual_seed(0)
    classes, dims = 5, 64
    y = torch.randint(0, classes, (1500,), generator=g)
    centres = 3.0 * torch.randn(classes, dims, generator=g)
    x = centres[y] + torch.randn(1500, dims, generator=g) + 50.0  # an offset the standardisation removes
    result = probe_top1(*_split(x, y, 500), classes)
    assert result.top1 > 98.0
    assert result.train_images == 500 and result.test_images == 1000 and result.dims == dims


def test_probe_on_random_features_is_at_chance():
    g = torch.Generator().manual_seed(1)
    classes = 10
    y = torch.randint(0, classes, (3000,), generator=g)
    x = torch.randn(3000, 32, generator=g)
    result = probe_top1(*_split(x, y, 1000), classes)
    assert abs(result.top1 - 100.0 / classes) < 4.0
    assert result.standard_error > 0


def test_probe_is_deterministic():
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 3, (300,), generator=g)
    x = torch.randn(300, 16, generator=g) + y[:, None].float()
    assert probe_top1(*_split(x, y, 150), 3) == probe_top1(*_split(x, y, 150), 3)


def test_written_out_gradients_match_autograd():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 6, generator=g), torch.randint(0, 4, (40,), generator=g)
    weight = torch.randn(6, 4, generator=g, requires_grad=True)
    bias = torch.randn(4, generator=g, requires_grad=True)
    loss = F.cross_entropy(x @ weight + bias, y) + 0.1 * weight.pow(2).sum()
    loss.backward()
    ours, grad_w, grad_b = loss_and_gradients(x, F.one_hot(y, 4).float(), weight.detach(), bias.detach(), 0.1)
    assert torch.allclose(ours, loss.detach(), atol=1e-6)
    assert torch.allclose(grad_w, weight.grad, atol=1e-6) and torch.allclose(grad_b, bias.grad, atol=1e-6)
