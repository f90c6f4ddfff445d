import copy
import dataclasses

import pytest
import torch

from synthgap.data.tensors import ImageTensors
from synthgap.experiments import transfer as transfer_module
from synthgap.experiments.transfer import TransferSetup, build_student, train_student
from synthgap.models import ModelConfig, build_model, get_family, reestimate_batchnorm, state_keys
from synthgap.train.loaders import recipe_loaders
from synthgap.train.loop import evaluate
from synthgap.train.recipe import TrainRecipe

FAMILY = get_family("resnet18")
LAYERS = FAMILY.layer_map
RECIPE = TrainRecipe(
    epochs=2, batch_size=8, lr=0.05, warmup_epochs=0, precision="fp32", channels_last=False, augmentation="none"
)


def data(seed: int, n: int = 24) -> ImageTensors:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    return ImageTensors(images, torch.arange(n) % 3, ("a", "b", "c"))


def models(name: str = "resnet18", seed: int = 0):
    config = ModelConfig(name=name, width=0.125, num_classes=3, image_size=16)
    torch.manual_seed(seed)
    source = build_model(config)
    torch.manual_seed(seed + 1)
    fresh = build_model(config)
    return source, fresh


def test_reinit_student_takes_layers_1_to_n_from_the_source_only():
    source, fresh = models()
    untouched = copy.deepcopy(fresh)
    student = build_student(source, fresh, TransferSetup(n=7), FAMILY)
    for key in student.state_dict():
        donor = source if key in state_keys(student, range(1, 8), LAYERS) else untouched
        assert torch.equal(student.state_dict()[key], donor.state_dict()[key]), key


def test_finetune_student_starts_as_the_whole_source_model():
    source, fresh = models()
    student = build_student(source, fresh, TransferSetup(n=7, rest="finetune"), FAMILY)
    assert student is not source
    assert all(
        torch.equal(a, b) for a, b in zip(student.state_dict().values(), source.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize(
    ("name", "n", "tta", "channels_last"),
    [
        ("resnet18", 12, "none", False),
        ("resnet50", 40, "none", False),
        ("vit_tiny", 9, "none", False),
        ("resnet18", 12, "flip", False),
        ("vit_tiny", 9, "flip", False),
        ("resnet18", 4, "none", True),  # the suffix starts on full-size maps, channels-last in both paths
        ("resnet50", 8, "flip", True),
        ("resnet18", 12, "flip_translate", False),  # every view's prefix outputs cached, shifted images included
        ("vit_tiny", 9, "flip_translate", False),
    ],
)
def test_cached_prefix_training_matches_ordinary_frozen_training(name, n, tta, channels_last, monkeypatch):
    """The fast path changes where the prefix is computed, not what is learned, in every family with a cut; with
    test-time augmentation the prefix outputs of each view of the test images are cached too. (The prefix runs in the
    training batch size here: tiny students on random images amplify the last-bit differences that other batch
    sizes give.)"""
    monkeypatch.setattr(transfer_module, "PREFIX_BATCH", 1)
    family = get_family(name)
    recipe = RECIPE.model_copy(update={"tta": tta, "channels_last": channels_last})
    results = {}
    for use_cache in (True, False):
        source, fresh = models(name)
        student = build_student(source, fresh, TransferSetup(n=n), family)
        # the same work through the ordinary path: the family without its cut
        used = family if use_cache else dataclasses.replace(family, split=None)
        result = train_student(
            student, TransferSetup(n=n), data(1), data(2), recipe, seed=0, family=used, progress=False
        )
        assert result.prefix_cache is use_cache
        assert (result.prefix_cache_note is None) is use_cache  # the ordinary path says why it did not cache
        results[use_cache] = (result.fit.top1, student.state_dict())
    assert results[True][0] == results[False][0]
    for key, value in results[True][1].items():
        torch.testing.assert_close(value, results[False][1][key], rtol=1e-5, atol=1e-6)


def test_all_layers_frozen_only_evaluates_the_source_model():
    source, fresh = models()
    student = build_student(source, fresh, TransferSetup(n=18), FAMILY)
    result = train_student(
        student, TransferSetup(n=18), data(1), data(2), RECIPE, seed=0, family=FAMILY, progress=False
    )
    expected = evaluate(source, recipe_loaders(data(1), data(2), RECIPE, 0)[1], precision="fp32")
    assert (result.fit.top1, result.fit.top5) == expected and result.fit.train_images == 0
    assert not result.prefix_cache


def test_reestimated_statistics_are_the_target_data_statistics():
    source, _ = models()
    images = torch.randn(32, 3, 16, 16) * 3 + 2
    reestimate_batchnorm(source, 1, LAYERS, [images[:16], images[16:]])
    with torch.no_grad():
        conv_out = source.conv1(images)
    torch.testing.assert_close(source.bn1.running_mean, conv_out.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    later_bn = source.layer1[0].bn1
    assert torch.equal(later_bn.running_mean, torch.zeros_like(later_bn.running_mean))  # untouched: fresh model
    assert not source.bn1.training and source.bn1.momentum == 0.1
