from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as tvF

from synthgap.data import autoaugment as aa
from synthgap.data.transforms import AUGMENTATIONS, build_augmentation
from synthgap.errors import SynthgapError

PRESETS = ["randaugment", "trivialaugment", "autoaugment", "autoaugment_cifar10", "augmix"]

# torchvision's op names → ours
TV_NAMES = {
    "Identity": "identity",
    "ShearX": "shear_x",
    "ShearY": "shear_y",
    "TranslateX": "translate_x",
    "TranslateY": "translate_y",
    "Rotate": "rotate",
    "Brightness": "brightness",
    "Color": "color",
    "Contrast": "contrast",
    "Sharpness": "sharpness",
    "Posterize": "posterize",
    "Solarize": "solarize",
    "AutoContrast": "autocontrast",
    "Equalize": "equalize",
    "Invert": "invert",
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noise(*shape: int, seed: int = 123) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen(seed))


def full(value: float, n: int = 4) -> torch.Tensor:
    return torch.full((n,), value, dtype=torch.float64)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return noise(4, 3, 32, 32)


# --- presets ---------------------------------------------------------------------------------------------------


def test_presets_are_registered_and_built():
    expected = {
        "randaugment": aa.RandAugment,
        "trivialaugment": aa.TrivialAugmentWide,
        "autoaugment": aa.AutoAugment,
        "autoaugment_cifar10": aa.AutoAugmentCifar10,
        "augmix": aa.AugMix,
    }
    for name, cls in expected.items():
        assert name in AUGMENTATIONS
        assert type(build_augmentation(name)) is cls
    assert build_augmentation("autoaugment").policy == "imagenet"
    assert build_augmentation("autoaugment_cifar10").policy == "cifar10"


def test_unknown_preset_still_gives_registry_error():
    with pytest.raises(SynthgapError, match="augmentation preset 'randaug'.*randaugment"):
        build_augmentation("randaug")


@pytest.mark.parametrize("name", PRESETS)
def test_preset_uint8_shape_seeded_and_input_untouched(name):
    batch = noise(16, 3, 32, 32)
    before = batch.clone()
    augment = build_augmentation(name)
    out = augment(batch, gen(5))
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    assert torch.equal(batch, before)  # the loader's cached tensor must never be written into
    assert torch.equal(out, augment(batch, gen(5)))
    assert not torch.equal(out, augment(batch, gen(6)))


@pytest.mark.parametrize("name", PRESETS)
def test_preset_draws_per_image(name):
    one = noise(1, 3, 32, 32)
    out = build_augmentation(name)(one.expand(24, -1, -1, -1).contiguous(), gen(1))
    distinct = {tuple(image.flatten().tolist()) for image in out}
    assert len(distinct) >= 6  # a single draw for the batch would give one distinct image


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (1, 3, 20, 27), (3, 3, 7, 5)])
def test_preset_batch_of_one_and_any_size(name, shape):
    batch = noise(*shape)
    augment = build_augmentation(name)
    for seed in range(3):
        out = augment(batch, gen(seed))
        assert out.dtype == torch.uint8 and out.shape == batch.shape


def test_randaugment_without_ops_is_identity(images):
    assert torch.equal(aa.RandAugment(num_ops=0)(images, gen()), images)


def test_augmix_weights_seeded_normalised_and_leave_global_rng_alone():
    augmix = aa.AugMix()
    state = torch.get_rng_state()
    weights = augmix.mixing_weights(500, gen(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(weights, augmix.mixing_weights(500, gen(3)))
    assert weights.shape == (500, 4) and (weights >= 0).all()
    assert torch.allclose(weights.sum(1), torch.ones(500), atol=1e-5)
    assert 0.4 < weights[:, 0].mean() < 0.6  # Beta(1, 1) has mean 1/2
    assert weights[:, 0].std() > 0.2  # and is spread out (uniform: std 0.29)


def test_augmix_of_identity_chains_returns_the_input(images, monkeypatch):
    monkeypatch.setattr(aa, "apply_ops", lambda images, *args, **kwargs: images)
    assert torch.equal(aa.AugMix()(images, gen()), images)  # weights sum to one; the mix is rounded


# --- op spaces, magnitudes and policies are torchvision's -------------------------------------------------------


def tv_table(space: dict, num_bins: int, height: int, width: int) -> dict[str, tuple[list[float] | None, bool]]:
    table = {}
    for name, (bins, signed) in space.items():
        values = bins(num_bins, height, width)
        table[TV_NAMES[name]] = (None if values is None else [float(v) for v in values], signed)
    return table


def our_table(space: tuple[aa.OpSpec, ...], num_bins: int, height: int, width: int) -> dict:
    built = aa.MagnitudeTable.build(space, num_bins, height, width)
    return {op.name: (None if op.bins is None else built.values[i].tolist(), op.signed) for i, op in enumerate(space)}


@pytest.mark.parametrize(
    ("ours", "theirs", "num_bins"),
    [
        (aa.RANDAUGMENT_SPACE, v2.RandAugment._AUGMENTATION_SPACE, 31),
        (aa.TRIVIALAUGMENT_SPACE, v2.TrivialAugmentWide._AUGMENTATION_SPACE, 31),
        (aa.AUTOAUGMENT_SPACE, v2.AutoAugment._AUGMENTATION_SPACE, 10),
        (aa.AUGMIX_SPACE, v2.AugMix._AUGMENTATION_SPACE, 10),
        (aa.AUGMIX_SPACE[: aa.AUGMIX_PARTIAL_OPS], v2.AugMix._PARTIAL_AUGMENTATION_SPACE, 10),
    ],
)
@pytest.mark.parametrize("size", [(32, 32), (20, 27)])
def test_op_spaces_match_torchvision(ours, theirs, num_bins, size):
    assert [op.name for op in ours] == [TV_NAMES[name] for name in theirs]
    assert our_table(ours, num_bins, *size) == tv_table(theirs, num_bins, *size)


@pytest.mark.parametrize(("name", "tv_policy"), [("imagenet", "IMAGENET"), ("cifar10", "CIFAR10")])
def test_autoaugment_policies_match_torchvision(name, tv_policy):
    theirs = v2.AutoAugment(v2.AutoAugmentPolicy[tv_policy])._policies
    assert [tuple((TV_NAMES[op], p, level) for op, p, level in pair) for pair in theirs] == list(aa.POLICIES[name])


def test_autoaugment_policy_probabilities_are_drawn_per_image(images, monkeypatch):
    """With a policy of one sub-policy (invert p=0.5, nothing), about half of a batch is inverted."""
    monkeypatch.setitem(aa.POLICIES, "half", ((("invert", 0.5, None), ("invert", 0.0, None)),))
    batch = images[:1].expand(400, -1, -1, -1)
    out = aa.AutoAugment(policy="half")(batch, gen())
    inverted = (out == batch.bitwise_not()).flatten(1).all(1)
    assert torch.equal(inverted | (out == batch).flatten(1).all(1), torch.ones(400, dtype=torch.bool))
    assert 150 < inverted.sum() < 250


# --- single ops against torchvision's functional ops -----------------------------------------------------------


def assert_close_uint8(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Equal, up to rare one-level differences: the blends round like torchvision's only where both fuse the
    multiply-add the same way, which depends on the CPU's vector path."""
    assert ours.dtype == torch.uint8 and ours.shape == theirs.shape
    diff = (ours.int() - theirs.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.005


@pytest.mark.parametrize("bits", range(9))
def test_posterize_matches_torchvision(images, bits):
    assert torch.equal(aa.posterize(images, full(bits)), tvF.posterize(images, bits))


def test_solarize_matches_torchvision_at_every_bin(images):
    for fraction in torch.linspace(1.0, 0.0, 31).tolist():
        assert torch.equal(aa.solarize(images, full(fraction)), tvF.solarize(images, 255 * fraction)), fraction


def test_invert_equalize_autocontrast_match_torchvision(images):
    zero = full(0.0)
    assert torch.equal(aa.invert(images, zero), tvF.invert(images))
    assert torch.equal(aa.equalize(images, zero), tvF.equalize(images))
    assert torch.equal(aa.autocontrast(images, zero), tvF.autocontrast(images))


BLENDS = [
    (aa.brightness, tvF.adjust_brightness),
    (aa.color, tvF.adjust_saturation),
    (aa.contrast, tvF.adjust_contrast),
    (aa.sharpness, tvF.adjust_sharpness),
]


@pytest.mark.parametrize(("ours", "theirs"), BLENDS)
@pytest.mark.parametrize("magnitude", [-0.99, -0.3, 0.5, 0.9])
def test_blend_ops_match_torchvision(images, ours, theirs, magnitude):
    assert_close_uint8(ours(images, full(magnitude)), theirs(images, 1.0 + magnitude))


@pytest.mark.parametrize(("ours", "theirs"), BLENDS)
def test_blend_ops_take_one_magnitude_per_image(images, ours, theirs):
    magnitudes = [-0.6, 0.0, 0.3, 0.9]
    out = ours(images, torch.tensor(magnitudes, dtype=torch.float64))
    for i, m in enumerate(magnitudes):
        assert_close_uint8(out[i : i + 1], theirs(images[i : i + 1], 1.0 + m))


@pytest.mark.parametrize("op", [aa.brightness, aa.color, aa.contrast, aa.sharpness, aa.identity])
def test_blend_ops_at_magnitude_zero_leave_images_unchanged(images, op):
    assert torch.equal(op(images, full(0.0)), images)


@pytest.mark.parametrize("op", [aa.rotate, aa.shear_x, aa.shear_y, aa.translate_x, aa.translate_y])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_geometric_ops_at_magnitude_zero_leave_images_unchanged(images, op, interpolation):
    assert torch.equal(op(images, full(0.0), interpolation), images)


def test_rotate_90_is_rot90(images):
    assert torch.equal(aa.rotate(images, full(90.0)), torch.rot90(images, 1, dims=(-2, -1)))
    assert torch.equal(aa.rotate(images, full(-90.0)), torch.rot90(images, -1, dims=(-2, -1)))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("shape", [(32, 32), (17, 23)])
def test_rotate_matches_torchvision(interpolation, shape):
    batch = noise(5, 3, *shape)
    angles = [90.0, -30.0, 13.5, 135.0, -121.5]
    out = aa.rotate(batch, torch.tensor(angles, dtype=torch.float64), interpolation)
    for i, angle in enumerate(angles):
        expected = tvF.rotate(batch[i], angle, interpolation=InterpolationMode(interpolation))
        assert torch.equal(out[i], expected), angle


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("shape", [(32, 32), (17, 23)])
def test_shear_matches_torchvision(interpolation, shape):
    """torchvision's AutoAugment shears about the top-left corner by an angle of atan(magnitude)."""
    batch = noise(4, 3, *shape)
    shears = [0.3, -0.3, 0.99, -0.12]
    mode = InterpolationMode(interpolation)
    out_x = aa.shear_x(batch, torch.tensor(shears, dtype=torch.float64), interpolation)
    out_y = aa.shear_y(batch, torch.tensor(shears, dtype=torch.float64), interpolation)
    for i, shear in enumerate(shears):
        angle = math.degrees(math.atan(shear))
        common = {"angle": 0.0, "translate": [0, 0], "scale": 1.0, "interpolation": mode, "center": [0, 0]}
        assert torch.equal(out_x[i], tvF.affine(batch[i], shear=[angle, 0.0], **common)), shear
        assert torch.equal(out_y[i], tvF.affine(batch[i], shear=[0.0, angle], **common)), shear


@pytest.mark.parametrize("shape", [(32, 32), (17, 23)])
def test_translate_matches_torchvision(shape):
    batch = noise(4, 3, *shape)
    pixels = [5.7, -4.35, 14.5, -32.0]  # torchvision truncates toward zero
    out_x = aa.translate_x(batch, torch.tensor(pixels, dtype=torch.float64))
    out_y = aa.translate_y(batch, torch.tensor(pixels, dtype=torch.float64))
    for i, shift in enumerate(pixels):
        common = {"angle": 0.0, "scale": 1.0, "shear": [0.0, 0.0]}
        assert torch.equal(out_x[i], tvF.affine(batch[i], translate=[int(shift), 0], **common)), shift
        assert torch.equal(out_y[i], tvF.affine(batch[i], translate=[0, int(shift)], **common)), shift


# --- an op layer ---------------------------------------------------------------------------------------------


def test_apply_ops_gives_each_image_its_own_op():
    ops = ("identity", "invert", "posterize", "rotate", "translate_x", "brightness", "solarize")
    batch = noise(14, 3, 16, 16)
    choice = torch.tensor([0, 1, 2, 3, 4, 5, 6, -1, 6, 5, 4, 3, 2, 1])
    magnitude = torch.tensor([0, 0, 3, 30, -5, 0.4, 0.5, 0, 0.2, -0.5, 7, -90, 6, 0], dtype=torch.float64)
    out = aa.apply_ops(batch, ops, choice, magnitude)
    for i, (k, m) in enumerate(zip(choice.tolist(), magnitude.tolist(), strict=True)):
        alone = batch[i : i + 1]
        expected = alone if k < 0 else getattr(aa, ops[k])(alone, torch.tensor([m], dtype=torch.float64))
        assert torch.equal(out[i : i + 1], expected), (i, ops[k] if k >= 0 else "skip")


def test_apply_ops_calls_each_op_once_and_warps_once(monkeypatch):
    calls: dict[str, int] = {}

    def counting(name, fn):
        def op(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return fn(*args, **kwargs)

        return op

    for name, fn in list(aa.PIXEL_OPS.items()):
        monkeypatch.setitem(aa.PIXEL_OPS, name, counting(name, fn))
    monkeypatch.setattr(aa, "affine_warp", counting("warp", aa.affine_warp))
    names = tuple(op.name for op in aa.RANDAUGMENT_SPACE)
    choice = torch.arange(128) % len(names)
    aa.apply_ops(noise(128, 3, 8, 8), names, choice, torch.zeros(128, dtype=torch.float64))
    assert calls.pop("warp") == 1  # the five geometric ops share one warp
    assert "identity" not in calls
    assert calls == dict.fromkeys(set(names) - set(aa.AFFINE_OPS) - {"identity"}, 1)


def test_apply_ops_with_no_op_returns_input_untouched(images):
    out = aa.apply_ops(images, ("invert",), torch.full((4,), -1), full(0.0))
    assert out is images
