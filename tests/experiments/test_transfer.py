import copy

import torch

from synthgap.data.cache import ImageTensors
from synthgap.experiments.transfer import TransferSetup, build_student, train_student
from synthgap.models import LAYER_MAPS, ModelConfig, build_model
from synthgap.models.layers import reestimate_batchnorm, state_keys
from synthgap.train.loaders import recipe_loaders
from synthgap.train.loop import evaluate
from synthgap.train.recipe import TrainRecipe

LAYERS = LAYER_MAPS.get("resnet18")
RECIPE = TrainRecipe(epochs=2, batch_size=8, lr=0.05, warmup_epochs=0, precision="fp32", channels_last=False,
                     augmentation="none")  # fmt: skip


def data(seed: int, n: int = 24) -> ImageTensors:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    return ImageTensors(images, torch.arange(n) % 3, ("a", "b", "c"))


def models(seed: int = 0):
    torch.manual_seed(seed)
    source = build_model(ModelConfig(width=0.125, num_classes=3))
    torch.manual_seed(seed + 1)
    fresh = build_model(ModelConfig(width=0.125, num_classes=3))
    return source, fresh


def test_reinit_student_takes_layers_1_to_n_from_the_source_only():
    source, fresh = models()
    untouched = copy.deepcopy(fresh)
    student = build_student(source, fresh, TransferSetup(n=7), LAYERS)
    for key in student.state_dict():
        donor = source if key in state_keys(student, range(1, 8), LAYERS) else untouched
        assert torch.equal(student.state_dict()[key], donor.state_dict()[key]), key


def test_finetune_student_starts_as_the_whole_source_model():
    source, fresh = models()
    student = build_student(source, fresh, TransferSetup(n=7, rest="finetune"), LAYERS)
    assert student is not source
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), source.state_dict().values(),
                                                  strict=True))  # fmt: skip


def test_cached_prefix_training_matches_ordinary_frozen_training():
    """The fast path changes where the prefix is computed, not what is learned."""
    results = {}
    for use_cache in (True, False):
        source, fresh = models()
        student = build_student(source, fresh, TransferSetup(n=12), LAYERS)
        recipe = RECIPE if use_cache else RECIPE.model_copy(update={"augmentation": "none"})
        if not use_cache:  # same work through the ordinary path: pretend the model cannot be cut
            import synthgap.experiments.transfer as transfer_module

            original = transfer_module.supports_prefix_cut
            transfer_module.supports_prefix_cut = lambda model: False
        try:
            result, cached = train_student(student, TransferSetup(n=12), data(1), data(2), recipe, seed=0,
                                           layer_map=LAYERS, progress=False)  # fmt: skip
        finally:
            if not use_cache:
                transfer_module.supports_prefix_cut = original
        assert cached is use_cache
        results[use_cache] = (result.top1, student.state_dict())
    assert results[True][0] == results[False][0]
    for key, value in results[True][1].items():
        torch.testing.assert_close(value, results[False][1][key], rtol=1e-4, atol=1e-5)


def test_n18_only_evaluates_the_source_model():
    source, fresh = models()
    student = build_student(source, fresh, TransferSetup(n=18), LAYERS)
    result, cached = train_student(student, TransferSetup(n=18), data(1), data(2), RECIPE, seed=0, layer_map=LAYERS,
                                   progress=False)  # fmt: skip
    expected = evaluate(source, recipe_loaders(data(1), data(2), RECIPE, 0)[1], precision="fp32")
    assert (result.top1, result.top5) == expected and result.train_images == 0 and not cached


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
