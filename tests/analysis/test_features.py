"""Per-layer outputs through the layer map's hooks: one pooled vector per image and layer, for every layer."""

import pytest
import torch
from torch import nn

from synthgap.analysis.features import LayerTaps, pool, pooled_features, tap_points
from synthgap.errors import SynthgapError
from synthgap.models import ModelConfig, build_model, get_family

TINY = {"resnet18": 0.125, "vit_tiny": 0.05}  # ViT: 192 × 0.05 → 9 channels (3 heads)


def batches(n: int, batch_size: int):
    images = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return [(images[i : i + batch_size], torch.zeros(len(images[i : i + batch_size]))) for i in range(0, n, batch_size)]


@pytest.mark.parametrize("name", sorted(TINY))
def test_one_vector_per_image_for_every_layer(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, width=TINY[name])).eval()
    family = get_family(name)
    features = pooled_features(model, family.layer_map, batches(7, 3), device=torch.device("cpu"))
    assert sorted(features) == list(range(1, family.num_layers + 1))
    assert all(f.shape[0] == 7 and f.dim() == 2 for f in features.values())
    data = torch.cat([images for images, _ in batches(7, 3)])
    with torch.no_grad():
        logits = model(data)
    last = family.num_layers
    assert torch.allclose(features[last], logits, atol=1e-5)  # the last layer's output: the logits
    assert features[last].shape[1] == 10


def test_resnet_layers_are_read_after_the_residual_and_before_the_classifier():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="resnet18", width=0.125)).eval()
    points = tap_points(model, get_family("resnet18").layer_map)
    assert points[7] == ("layer2.1.conv1", "input")  # layer 7 (with layer2.0.downsample): the block's output
    assert points[17] == ("fc", "input") and points[18] == ("fc", "output")
    images = torch.randn(4, 3, 32, 32)
    with LayerTaps(model, get_family("resnet18").layer_map) as taps, torch.no_grad():
        outputs = taps(images, pool)
        block = model.layer2[0]
        stem = model.maxpool(model.relu(model.bn1(model.conv1(images))))
        expected = block(model.layer1(stem))
    assert torch.allclose(outputs[7], expected.mean(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(outputs[17] @ model.fc.weight.T + model.fc.bias, outputs[18], atol=1e-5)


def test_vit_tokens_are_averaged():
    tokens = torch.randn(2, 5, 3)
    assert torch.equal(pool(tokens), tokens.mean(dim=1))
    assert pool(torch.randn(2, 4, 3, 3)).shape == (2, 4)


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 2)

    def forward(self, x):
        return self.b(self.a(self.a(x)))


def test_a_module_that_runs_twice_is_refused():
    with LayerTaps(Twice(), {1: ("a",), 2: ("b",)}) as taps:
        taps(torch.randn(2, 3), pool)  # layer 1 reads b's input, layer 2 b's output: fine
    with LayerTaps(Twice(), {1: ("b",), 2: ("a",)}) as taps, pytest.raises(SynthgapError, match="ran twice"):
        taps(torch.randn(2, 3), pool)
