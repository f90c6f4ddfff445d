import pytest
import torch

from synthgap.errors import SynthgapError
from synthgap.models import ModelConfig, build_model, get_family, layer_of


def test_layer_numbering():
    layer_map = get_family("vit_tiny").layer_map
    assert layer_map[1] == ("patch_embed", "cls_token", "pos_embed")
    assert layer_map[2] == ("blocks.0",) and layer_map[13] == ("blocks.11",)
    assert layer_map[14] == ("norm", "head")
    assert layer_of("cls_token", layer_map) == 1 and layer_of("patch_embed.proj.weight", layer_map) == 1
    assert layer_of("blocks.10.mlp.fc2.bias", layer_map) == 12 and layer_of("norm.weight", layer_map) == 14


def test_small_images_get_4px_patches():
    model = build_model(ModelConfig(name="vit_tiny", width=0.25, num_classes=5))
    assert model.patch_embed.patch_size == (4, 4) and model.pos_embed.shape == (1, 65, 48)
    assert model.head.out_features == 5 and model.global_pool == "token"


def test_224px_with_16px_patches_has_197_tokens():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="vit_tiny", width=1 / 16, num_classes=5, image_size=224)).eval()
    assert model.patch_embed.patch_size == (16, 16) and model.pos_embed.shape == (1, 197, 12)
    prefix, _ = get_family("vit_tiny").split(model, 1)
    with torch.no_grad():
        assert prefix(torch.randn(1, 3, 224, 224)).shape == (1, 197 * 12)


WIDTHS = [("vit_tiny", 1.0, 192), ("vit_small", 0.25, 96), ("vit_tiny", 0.3, 57), ("vit_small", 0.01, 6)]


@pytest.mark.parametrize(("name", "width", "dim"), WIDTHS)
def test_width_scales_the_embedding_in_whole_heads(name, width, dim):
    with torch.device("meta"):
        model = build_model(ModelConfig(name=name, width=width))
    assert model.embed_dim == dim and dim % model.blocks[0].attn.num_heads == 0


def test_dropouts_are_off():
    model = build_model(ModelConfig(name="vit_tiny", width=0.125))
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates and all(p == 0 for p in rates)


@pytest.mark.parametrize(
    "bad",
    [{"image_size": 30}, {"image_size": 64, "patch_size": 6}, {"stem": "cifar"}, {"patch_size": 0}],
)
def test_bad_vit_config_raises(bad):
    with pytest.raises(SynthgapError):
        build_model(ModelConfig(name="vit_tiny", **bad))
