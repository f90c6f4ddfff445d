"""The normalization ablation: AdaBN's re-estimated statistics, and model cache keys that ignore the test
normalization."""

import torch

from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import get_normalization
from synthgap.experiments.kinds.normalization import adapt_batchnorm
from synthgap.experiments.store import DataStore, ModelCache
from synthgap.models import ModelConfig, build_model, get_family
from synthgap.train.compute import Compute
from synthgap.train.recipe import TrainRecipe
from tests.specs import tiny_spec


def test_adabn_replaces_running_statistics_with_the_new_images():
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.125, num_classes=3))
    images = torch.randint(100, 156, (17, 3, 32, 32), dtype=torch.uint8)  # 17 = two batches of 8 and one left over
    data = ImageTensors(images, torch.zeros(17, dtype=torch.long), ("a", "b", "c"))
    weights_before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    recipe = TrainRecipe(batch_size=8, channels_last=False)
    adapt_batchnorm(model, data, recipe, get_family("resnet18"), torch.device("cpu"))
    with torch.no_grad():  # bn1's statistics: the average over the two whole batches of conv1's batch statistics
        stem = model.conv1(get_normalization("imagenet")(images[:16]))
        means = [stem[i : i + 8].mean(dim=(0, 2, 3)) for i in (0, 8)]
        variances = [stem[i : i + 8].var(dim=(0, 2, 3), unbiased=True) for i in (0, 8)]
    torch.testing.assert_close(model.bn1.running_mean, (means[0] + means[1]) / 2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.bn1.running_var, (variances[0] + variances[1]) / 2, rtol=1e-4, atol=1e-5)
    assert not torch.equal(model.layer4[1].bn2.running_var, torch.ones_like(model.layer4[1].bn2.running_var))
    shortcut = model.layer2[0].downsample[1]  # shortcut BatchNorms are adapted too, not only those the map names
    assert not torch.equal(shortcut.running_var, torch.ones_like(shortcut.running_var))
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights_before.items() if "num_batches" not in k)


def test_model_cache_key_depends_on_training_not_on_test_normalization(cifake_root, tmp_path, monkeypatch):
    spec = tiny_spec(cifake_root, [{"kind": "baseline"}], name="ablations")
    images = DataStore(spec, progress=False).train("real")
    cache = ModelCache(tmp_path / "models")
    model, recipe = spec.model, spec.recipe
    one = Compute("cpu", 1).identity(recipe.precision)
    plain = cache.key(images, model, recipe, 0, one)
    assert cache.key(images, model, recipe.model_copy(update={"test_normalization": "cifar10"}), 0, one) == plain
    assert cache.key(images, model, recipe.model_copy(update={"normalization": "cifar10"}), 0, one) != plain
    assert cache.key(images, model.model_copy(update={"name": "resnet34"}), recipe, 0, one) != plain
    # other arithmetic, another model: a model trained with 2 threads is never taken for one trained with 1
    assert cache.key(images, model, recipe, 0, Compute("cpu", 2).identity(recipe.precision)) != plain
