"""The texture-shape ablation: cue accuracies do not depend on the chunk size."""

import torch

from synthgap.data.tensors import ImageTensors
from synthgap.experiments.kinds import texture_shape
from synthgap.models import ModelConfig, build_model
from synthgap.train.recipe import TrainRecipe


def test_cue_accuracies_do_not_depend_on_the_chunk_size(monkeypatch):
    from synthgap.data.cues import CueVariants

    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.125, num_classes=3))
    test = ImageTensors(
        torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8), torch.arange(10) % 3, ("a", "b", "c")
    )
    recipe = TrainRecipe(eval_batch_size=4, precision="fp32")
    whole = texture_shape.cue_accuracies(model, test, recipe, CueVariants())
    monkeypatch.setattr(texture_shape, "CUE_CHUNK", 3)
    assert texture_shape.cue_accuracies(model, test, recipe, CueVariants()) == whole  # the same patch orders
    assert set(whole) == {"grayscale_blur", "edges", "patch_shuffle"}
