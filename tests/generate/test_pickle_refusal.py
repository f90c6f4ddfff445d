"""A model folder whose weights are only pickle files is refused with one line, before anything is unpickled."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from synthgap.errors import SynthgapError
from synthgap.generate.models import load_pipeline, resolve_model
from synthgap.generate.text2img import PIPELINE as TEXT2IMG


def pickle_component(model, tmp_path, component: str, safetensors_name: str, bin_name: str):
    """A copy of the tiny pipeline whose `component` weights are a torch-saved (pickled) .bin and nothing else."""
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    weights = folder / component / safetensors_name
    torch.save(load_file(weights), folder / component / bin_name)
    weights.unlink()
    return folder


@pytest.mark.parametrize(
    ("component", "safetensors_name", "bin_name"),
    [
        ("text_encoder", "model.safetensors", "pytorch_model.bin"),
        ("unet", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    ],
)
def test_pickle_only_weights_are_refused(tiny_text2img, tmp_path, monkeypatch, component, safetensors_name, bin_name):
    folder = pickle_component(tiny_text2img, tmp_path, component, safetensors_name, bin_name)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load was called on a pickle file")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(SynthgapError) as caught:
        load_pipeline(resolve_model(str(folder)), TEXT2IMG, torch.float32, safety_checker=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"refusing {folder / component / bin_name}: ")
    assert "unpickle untrusted code" in message and "convert them to safetensors" in message


def test_safetensors_beside_a_pickle_file_load(tiny_text2img, tmp_path):
    """A folder shipping both formats is fine: only the safetensors file is read."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_text2img, folder)
    (folder / "text_encoder" / "pytorch_model.bin").write_bytes(b"never read")
    pipe = load_pipeline(resolve_model(str(folder)), TEXT2IMG, torch.float32, safety_checker=False)
    assert pipe.text_encoder is not None
