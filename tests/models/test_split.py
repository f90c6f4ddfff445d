import pytest
import torch

from synthgap.models import ModelConfig, build_model
from synthgap.models.split import ResNetPrefix, ResNetSuffix, cut_point, supports_prefix_cut


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_prefix_then_suffix_equals_the_whole_model_at_every_cut(stem):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.125, stem=stem)).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        for n in range(1, 18):
            prefix = ResNetPrefix(model, n)
            features = prefix(x)
            assert features.ndim == 2 and features.shape[0] == 3
            torch.testing.assert_close(ResNetSuffix(model, n, prefix.shapes)(features), expected)


def test_cut_points_follow_the_layer_map():
    assert cut_point(1).block is None
    assert cut_point(2) == cut_point(2).__class__(block=0, mid_block=True)  # after layer1.0.conv1
    assert cut_point(3).mid_block is False and cut_point(3).block == 0  # after layer1.0 (conv2 + shortcut)
    assert cut_point(16).block == 7 and cut_point(16).mid_block  # after layer4.1.conv1
    assert cut_point(17).block == 7 and not cut_point(17).mid_block
    with pytest.raises(ValueError):
        cut_point(18)


def test_only_basic_block_resnets_support_the_cut():
    assert supports_prefix_cut(build_model(ModelConfig(width=0.125)))
    assert not supports_prefix_cut(torch.nn.Linear(2, 2))
