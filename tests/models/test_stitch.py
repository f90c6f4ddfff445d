"""Model stitching's building blocks: a stitch between a model and itself starts as the identity, between two models
as their least-squares map; one map per packed part (1×1 convolution with BatchNorm for feature maps, a linear map
per token for a ViT); and shapes it cannot map are refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthgap.errors import SynthgapError
from synthgap.models import ModelConfig, build_model, get_family
from synthgap.models.stitch import PartMap, Stitch, Stitched, packed_shapes

IMAGES = 64  # enough positions / tokens for a well-conditioned least-squares start at every cut tested
SIDE = 16  # px: a ResNet's cifar stem keeps 16×16 maps in layer1; a ViT with 4 px patches has 16 + 1 tokens
CONFIGS = {
    "resnet18": ModelConfig(width=0.125),  # 8 channels in layer1, 64 in layer4
    "vit_tiny": ModelConfig(name="vit_tiny", width=0.125, image_size=SIDE, patch_size=4),  # 24 dims, 3 heads
}


def make(name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(CONFIGS[name]).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(IMAGES, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))


def started_stitch(prefix: nn.Module, given: torch.Tensor, wanted: torch.Tensor) -> Stitch:
    stitch = Stitch(packed_shapes(prefix))
    stitch.start_from(given, wanted)
    return stitch.eval()


# --- the least-squares start ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "n"),
    [
        ("resnet18", 1),  # after the stem
        ("resnet18", 2),  # inside layer1.0: block input and activation
        ("resnet18", 3),  # at the end of layer1.0
        ("resnet18", 16),  # inside layer4.1
        ("resnet18", 17),  # the last cut, 2×2 maps of 64 channels
        ("vit_tiny", 1),  # the embedded tokens
        ("vit_tiny", 7),
        ("vit_tiny", 13),  # after the last block
    ],
)
def test_a_self_stitch_starts_as_the_identity(images, name, n):
    model = make(name, 0)
    prefix, suffix = get_family(name).split(model, n)
    with torch.no_grad():
        expected = model(images)
        features = prefix(images)
        stitch = started_stitch(prefix, features, features)
        mapped = stitch(features)
        stitched = Stitched(stitch, suffix).eval()(features)
    assert mapped.shape == features.shape
    scale = features.abs().max().item()
    torch.testing.assert_close(mapped, features, atol=1e-2 * scale, rtol=0)
    torch.testing.assert_close(stitched, expected, atol=1e-2 * expected.abs().max().item(), rtol=0)


def _optimal_residual(source: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared residual of the best affine map of `source` rows onto `target` rows (no ridge)."""
    with_ones = torch.cat([source.double(), torch.ones(len(source), 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(with_ones, target.double()).solution
    return (with_ones @ solution - target.double()).pow(2).mean().item()


@pytest.mark.parametrize(("name", "n"), [("resnet18", 2), ("resnet18", 9), ("vit_tiny", 4)])
def test_a_stitch_between_two_models_starts_from_their_least_squares_map(images, name, n):
    family = get_family(name)
    giver_prefix, _ = family.split(make(name, 0), n)
    receiver_prefix, _ = family.split(make(name, 1), n)
    with torch.no_grad():
        given, wanted = giver_prefix(images), receiver_prefix(images)
        stitch = started_stitch(giver_prefix, given, wanted)
        mapped = stitch(given)
    unchanged = (given - wanted).pow(2).mean().item()
    fitted = (mapped - wanted).pow(2).mean().item()
    assert fitted < 0.5 * unchanged, (fitted, unchanged)
    # part by part, as close as the best affine map of every position / token (the ridge costs little)
    for part, x, y, out in zip(
        stitch.parts,
        *(torch.split(t, [s.numel() for s in stitch.shapes], dim=1) for t in (given, wanted, mapped)),
        strict=True,
    ):
        x, y, out = (t.reshape(-1, *part.shape) for t in (x, y, out))
        best = _optimal_residual(part.rows(x), part.rows(y))
        reached = (part.rows(out) - part.rows(y)).pow(2).mean().item()
        assert best <= reached <= 1.05 * best + 1e-9, (best, reached)


def test_the_norm_of_a_feature_map_stitch_takes_the_source_statistics(images):
    prefix, _ = get_family("resnet18").split(make("resnet18", 0), 3)
    with torch.no_grad():
        given = prefix(images)
    stitch = started_stitch(prefix, given, given)
    rows = stitch.parts[0].rows(given.reshape(-1, *stitch.shapes[0]))
    norm = stitch.parts[0].norm
    torch.testing.assert_close(norm.running_mean, rows.mean(0))
    torch.testing.assert_close(norm.running_var, rows.var(0, unbiased=False))


# --- parts and their parameters -------------------------------------------------------------------------------------


def test_a_resnet_cut_inside_a_block_gets_one_conv_stitch_per_packed_part(images):
    prefix, _ = get_family("resnet18").split(make("resnet18", 0), 2)
    with torch.no_grad():
        prefix(images[:2])
    stitch = Stitch(packed_shapes(prefix))
    assert stitch.shapes == [torch.Size([8, SIDE, SIDE])] * 2  # block input and the activation after conv1
    assert len(stitch.parts) == 2
    for part in stitch.parts:
        assert isinstance(part.norm, nn.BatchNorm2d) and isinstance(part.map, nn.Conv2d)
        assert part.map.kernel_size == (1, 1) and part.map.in_channels == part.map.out_channels == 8
    # per part: BatchNorm weight and bias (2·8) + 1×1 conv weight and bias (8·8 + 8)
    assert sum(p.numel() for p in stitch.parameters()) == 2 * (2 * 8 + 8 * 8 + 8)


def test_a_resnet_cut_at_a_block_end_gets_one_part(images):
    prefix, _ = get_family("resnet18").split(make("resnet18", 0), 17)
    with torch.no_grad():
        prefix(images[:2])
    stitch = Stitch(packed_shapes(prefix))
    assert stitch.shapes == [torch.Size([64, 2, 2])]
    assert sum(p.numel() for p in stitch.parameters()) == 2 * 64 + 64 * 64 + 64


def test_a_vit_stitch_is_one_linear_map_of_every_token(images):
    prefix, _ = get_family("vit_tiny").split(make("vit_tiny", 0), 5)
    with torch.no_grad():
        features = prefix(images[:2])
    stitch = Stitch(packed_shapes(prefix))
    assert stitch.shapes == [torch.Size([17, 24])]  # 16 patches + the class token, 24 dims
    (part,) = stitch.parts
    assert isinstance(part.norm, nn.Identity) and isinstance(part.map, nn.Linear)
    assert (part.map.in_features, part.map.out_features) == (24, 24)
    assert sum(p.numel() for p in stitch.parameters()) == 24 * 24 + 24
    with torch.no_grad():  # the same map for every token: a changed token changes only its own output
        before = stitch(features).reshape(2, 17, 24)
        changed = features.reshape(2, 17, 24).clone()
        changed[:, 3] += 1.0
        after = stitch(changed.flatten(1)).reshape(2, 17, 24)
    differs = (after - before).abs().amax(dim=(0, 2)) > 0
    assert differs.tolist() == [i == 3 for i in range(17)]


# --- refusals -------------------------------------------------------------------------------------------------------


def test_a_stitch_without_shapes_is_refused():
    with pytest.raises(SynthgapError, match="packed shapes"):
        Stitch([])


def test_a_start_from_features_of_another_shape_is_refused():
    stitch = Stitch([torch.Size([4, 2, 2])])
    with pytest.raises(SynthgapError, match=r"differ in shape: \(3, 16\) vs \(3, 12\)"):
        stitch.start_from(torch.randn(3, 16), torch.randn(3, 12))


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 4)])
def test_a_part_neither_a_feature_map_nor_tokens_is_refused(shape):
    with pytest.raises(SynthgapError, match=r"C×H×W feature maps or T×D tokens"):
        PartMap(torch.Size(shape))


def test_the_shapes_of_a_resnet_prefix_that_never_ran_are_unknown():
    prefix, _ = get_family("resnet18").split(make("resnet18", 0), 4)
    with pytest.raises(SynthgapError, match="cannot tell the packed shapes of a ResNetPrefix"):
        packed_shapes(prefix)


# --- training a stitch ----------------------------------------------------------------------------------------------


def test_a_stitch_beyond_the_feature_memory_limit_trains_with_the_prefix_in_every_step(monkeypatch):
    """Both paths start from the same least-squares map (same start top-1) and train only the stitch; past the
    limit the giver's prefix runs inside every step instead of being cached."""
    import synthgap.experiments.transfer as transfer_module
    from synthgap.data.tensors import ImageTensors
    from synthgap.train.recipe import TrainRecipe

    generator = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (40, 3, SIDE, SIDE), dtype=torch.uint8, generator=generator)
    data = ImageTensors(pixels, torch.arange(40) % 4, ("a", "b", "c", "d"), [])
    recipe = TrainRecipe(epochs=1, batch_size=8, precision="fp32", augmentation="none", lr=0.01)
    family = get_family("resnet18")

    def stitched_run(limit: int):
        monkeypatch.setattr(transfer_module, "MAX_CACHED_FEATURE_BYTES", limit)
        giver, receiver = make("resnet18", 0), make("resnet18", 1)
        before = {k: v.clone() for k, v in receiver.state_dict().items()}
        result = transfer_module.train_stitch(
            giver, receiver, 5, family, data, data, recipe, seed=0, progress=False, start_images=16
        )
        assert all(torch.equal(before[k], v) for k, v in receiver.state_dict().items())  # the receiver stays as it was
        return result

    cached, uncached = stitched_run(1 << 30), stitched_run(1)
    assert cached.prefix_cache and not uncached.prefix_cache
    assert cached.start.top1 == pytest.approx(uncached.start.top1)
    assert cached.parameters == uncached.parameters > 0
