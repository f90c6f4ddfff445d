"""A tiny training run for the kill-and-resume test: `python -m tests.train.resume_worker FOLDER [--no-state]`.

Trains a width-0.125 ResNet-18 on random 16 px images for a few epochs, with its training state in FOLDER/state
(unless --no-state), touches FOLDER/started just before `fit`, and writes the final weights (FOLDER/weights.pt) and
the fit's history and resumed epochs (FOLDER/result.json) when it finishes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from synthgap.data.loader import TensorLoader
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import build_augmentation, get_normalization
from synthgap.models import ModelConfig, build_model
from synthgap.train.loop import fit, seed_everything
from synthgap.train.recipe import TrainRecipe

EPOCHS = 5
TOKEN = "tiny-resnet18-s0"


def random_images(n: int, seed: int) -> ImageTensors:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=generator, dtype=torch.uint8)
    return ImageTensors(images, torch.arange(n) % 4, ("a", "b", "c", "d"))


def main(folder: Path, with_state: bool) -> None:
    torch.set_num_threads(1)
    normalization = get_normalization("imagenet")
    train = TensorLoader(
        random_images(96, seed=0),
        batch_size=8,
        normalization=normalization,
        augmentation=build_augmentation("standard"),
        shuffle=True,
        drop_last=True,
        seed=3,
    )
    test = TensorLoader(random_images(32, seed=1), batch_size=16, normalization=normalization)
    recipe = TrainRecipe(epochs=EPOCHS, batch_size=8, lr=0.05, warmup_epochs=0.5, precision="fp32", eval_every=2)
    seed_everything(0)
    model = build_model(ModelConfig(width=0.125, num_classes=4))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "started").touch()
    state_dir = folder / "state" if with_state else None
    # a state after every epoch (the default waits minutes between saves): the test kills between saves
    result = fit(
        model, train, test, recipe, progress=False, state_dir=state_dir, state_token=TOKEN, checkpoint_minutes=0
    )
    torch.save(model.state_dict(), folder / "weights.pt")
    summary = {"history": result.history, "resumed_epochs": result.resumed_epochs}
    (folder / "result.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--no-state" not in sys.argv[2:])
