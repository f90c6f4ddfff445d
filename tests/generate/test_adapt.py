"""LoRA adaptation on the tiny pipeline: the loss falls, the LoRA reloads through load_lora_weights and changes the
images, a stopped run resumes to the same bytes, and LoRAs that do not fit are refused."""

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from synthgap.errors import SynthgapError
from synthgap.generate import adapt as adapt_module
from synthgap.generate.adapt import AdaptConfig, LoraParts, adapt
from synthgap.generate.img2img import Img2ImgConfig, generate_img2img
from synthgap.generate.lora import ADAPT_RESULT, LORA_WEIGHTS
from synthgap.generate.output import MANIFEST
from synthgap.generate.text2img import generate_text2img
from tests.generate.tiny_pipelines import png_files, tiny_config


@pytest.fixture(scope="module")
def real_two_classes(tmp_path_factory):
    """cat and dog, 4 smooth 40×48 images each (a learnable target, unlike noise), dog's in a nested folder."""
    root = tmp_path_factory.mktemp("real") / "real"
    rng = np.random.default_rng(0)
    for c, folder in enumerate(("cat", "dog/nested")):
        for i in range(4):
            path = root / folder / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            base = np.linspace(0, 255, 48)[None, :, None] * np.array([1.0, 0.5 * c, 1 - c])
            image = np.clip(base + rng.normal(0, 8, (40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(path)
    return root


def adapt_config(model, out, real, **changes) -> AdaptConfig:
    settings = {"size": 32, "epochs": 2, "lr": 1e-2, "batch_size": 3, "rank": 4, "seed": 1}
    return AdaptConfig(out=out, source=f"folder:{real}", model=str(model), **{**settings, **changes})


@pytest.fixture(scope="module")
def trained_lora(tiny_text2img, real_two_classes, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "lora"
    return out, adapt(adapt_config(tiny_text2img, out, real_two_classes, epochs=12, text_encoder=True), progress=False)


def test_the_lora_loss_falls_and_the_record_says_what_it_used(trained_lora, tiny_text2img):
    out, result = trained_lora
    losses = result.losses["all"]
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3])
    record = json.loads((out / ADAPT_RESULT).read_text())
    assert record["real_images_used"] == 8 and record["rank"] == 4
    assert set(record["base"]) == {"unet", "text_encoder"}
    settings = json.loads((out / "adapt.json").read_text())
    assert settings["kind"] == "adapt" and settings["text_encoder_targets"] == [
        "q_proj",
        "k_proj",
        "v_proj",
        "out_proj",
    ]


def test_the_lora_reloads_through_load_lora_weights_and_changes_the_images(
    trained_lora, tiny_text2img, reference_set, tmp_path
):
    out, _ = trained_lora
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_text2img, use_safetensors=True)
    pipe.load_lora_weights(str(out), weight_name=LORA_WEIGHTS)  # the diffusers layout, as any user would load it
    assert any("lora" in name for name, _ in pipe.unet.named_parameters())
    assert any("lora" in name for name, _ in pipe.text_encoder.named_parameters())

    gen = tmp_path / "gen"
    generate_text2img(tiny_config(tiny_text2img, gen, lora=out, lora_scale=0.5), progress=False)
    changed = png_files(gen)
    assert changed.keys() == png_files(reference_set).keys() and changed != png_files(reference_set)
    lines = [json.loads(line) for line in (gen / MANIFEST).read_text().splitlines()]
    weights_sha = json.loads((out / ADAPT_RESULT).read_text())["sha256"]["None"]
    assert {(r["lora"], r["lora_scale"]) for r in lines} == {(weights_sha, 0.5)}
    with pytest.raises(SynthgapError, match="other settings"):  # another scale into the same folder
        generate_text2img(tiny_config(tiny_text2img, gen, lora=out, lora_scale=1.0), progress=False)


def stop_in_the_second_epoch(monkeypatch):
    """Make LoRA training stop at its 4th step, after epoch 1's state was saved (3 steps an epoch: 8 images in
    batches of 3), as a kill would; returns the real step, to put back."""
    real_step, steps = LoraParts.step, []

    def step(self, batch, prompts, generator):
        steps.append(1)
        if len(steps) == 4:
            raise KeyboardInterrupt
        return real_step(self, batch, prompts, generator)

    monkeypatch.setattr(LoraParts, "step", step)
    return real_step


def test_a_stopped_run_resumes_to_bit_identical_weights(tiny_text2img, real_two_classes, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    adapt(adapt_config(tiny_text2img, whole, real_two_classes, epochs=3), progress=False)
    cut = tmp_path / "cut"
    real_step = stop_in_the_second_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        adapt(adapt_config(tiny_text2img, cut, real_two_classes, epochs=3), progress=False)
    assert json.loads((cut / "state" / "state.json").read_text())["step"] == 3 and not (cut / LORA_WEIGHTS).exists()
    monkeypatch.setattr(LoraParts, "step", real_step)
    resumed = adapt(adapt_config(tiny_text2img, cut, real_two_classes, epochs=3), progress=False)
    assert resumed.steps_run == 6
    assert (cut / LORA_WEIGHTS).read_bytes() == (whole / LORA_WEIGHTS).read_bytes()
    assert adapt(adapt_config(tiny_text2img, cut, real_two_classes, epochs=3), progress=False).steps_run == 0
    with pytest.raises(SynthgapError, match=r"other settings \(rank: 4 → 8\)"):
        adapt(adapt_config(tiny_text2img, cut, real_two_classes, epochs=3, rank=8), progress=False)
    (cut / "state" / "optimizer.pt").write_bytes(b"changed")
    (cut / LORA_WEIGHTS).unlink()
    with pytest.raises(SynthgapError, match="does not match its state.json"):  # an unchecked state is never trusted
        adapt(adapt_config(tiny_text2img, cut, real_two_classes, epochs=3), progress=False)


def test_one_lora_per_class_drives_img2img_class_by_class(tiny_text2img, real_two_classes, tmp_path):
    loras = tmp_path / "loras"
    result = adapt(adapt_config(tiny_text2img, loras, real_two_classes, one_per_class=True, epochs=1), progress=False)
    assert result.loras == 2 and (loras / "cat" / LORA_WEIGHTS).is_file() and (loras / "dog" / LORA_WEIGHTS).is_file()
    source = f"folder:{real_two_classes}"
    settings = {"per_class": 2, "size": 32, "steps": 4, "batch_size": 3}
    plain, adapted = tmp_path / "plain", tmp_path / "adapted"
    generate_img2img(Img2ImgConfig(out=plain, source=source, model=str(tiny_text2img), **settings), progress=False)
    generate_img2img(
        Img2ImgConfig(out=adapted, source=source, model=str(tiny_text2img), lora=loras, **settings), progress=False
    )
    assert png_files(plain).keys() == png_files(adapted).keys() and png_files(plain) != png_files(adapted)
    record = json.loads((adapted / MANIFEST).read_text().splitlines()[0])
    assert len(record["lora"]) == 64


def test_loras_that_do_not_fit_are_refused_with_one_line(
    trained_lora, tiny_text2img, reference_set, real_two_classes, tmp_path
):
    out, _ = trained_lora
    other = tmp_path / "other-base"
    shutil.copytree(out, other)
    record = json.loads((other / ADAPT_RESULT).read_text())
    record["base"]["unet"]["cross_attention_dim"] = 768
    (other / ADAPT_RESULT).write_text(json.dumps(record))
    with pytest.raises(SynthgapError, match=r"another base model .*cross_attention_dim 768 → 32"):
        generate_text2img(tiny_config(tiny_text2img, tmp_path / "a", lora=other), progress=False)

    foreign = tmp_path / "foreign"  # a LoRA from elsewhere whose module the model lacks
    foreign.mkdir()
    save_file(
        {
            "unet.down_blocks.7.attn.to_q.lora_A.weight": torch.zeros(4, 32),
            "unet.down_blocks.7.attn.to_q.lora_B.weight": torch.zeros(32, 4),
        },
        foreign / LORA_WEIGHTS,
    )
    with pytest.raises(SynthgapError, match="targets unet.down_blocks.7.attn.to_q, which this model does not have"):
        generate_text2img(tiny_config(tiny_text2img, tmp_path / "b", lora=foreign), progress=False)
    save_file(
        {
            "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 768),
            "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(64, 4),
        },
        foreign / LORA_WEIGHTS,
    )
    with pytest.raises(SynthgapError, match="has 64 features, the LoRA 768"):
        generate_text2img(tiny_config(tiny_text2img, tmp_path / "c", lora=foreign), progress=False)

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_lora_weights.bin").write_bytes(b"not loaded")
    with pytest.raises(SynthgapError, match="refusing .*pytorch_lora_weights.bin: the LoRA is stored only as a pickle"):
        generate_text2img(tiny_config(tiny_text2img, tmp_path / "d", lora=pickled), progress=False)
    with pytest.raises(SynthgapError, match="LoRA folder not found"):
        generate_text2img(tiny_config(tiny_text2img, tmp_path / "e", lora=tmp_path / "nowhere"), progress=False)
    with pytest.raises(SynthgapError, match="holds a `synthgap generate` run; choose another --out for this adapt run"):
        adapt(adapt_config(tiny_text2img, reference_set, real_two_classes), progress=False)


def test_the_size_defaults_to_the_models_own_and_a_far_one_is_warned(
    tiny_text2img, real_two_classes, tmp_path, monkeypatch, caplog
):
    """The tiny model's own size is 64 px (UNet sample size 32 × VAE scale factor 2), as diffusers' pipelines say."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_text2img, use_safetensors=True)
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64
    sides, real_square = set(), adapt_module.square

    def square(image, size):  # the side each real image is trained at
        sides.add(size)
        return real_square(image, size)

    monkeypatch.setattr(adapt_module, "square", square)
    own = dict(
        out=tmp_path / "own",
        source=f"folder:{real_two_classes}",
        model=str(tiny_text2img),
        steps=1,
        batch_size=2,
        rank=4,
    )
    with caplog.at_level(logging.WARNING, logger="synthgap"):
        adapt(AdaptConfig(**own), progress=False)  # no size given
    assert sides == {64} and json.loads((tmp_path / "own" / "adapt.json").read_text())["size"] == 64
    assert caplog.records == []
    with caplog.at_level(logging.WARNING, logger="synthgap"):
        assert adapt(AdaptConfig(**own), progress=False).steps_run == 0  # a rerun without a size: the same run
        adapt(AdaptConfig(**{**own, "out": tmp_path / "far"}, size=256), progress=False)
    assert sides == {64, 256}
    (warning,) = [record.getMessage() for record in caplog.records]
    assert warning.startswith(f"synthgap: warning: --size 256 is far from {tiny_text2img}'s own image size (64 px)")


def test_a_state_saved_before_the_scaler_was_kept_resumes_to_the_same_weights(
    tiny_text2img, real_two_classes, tmp_path, monkeypatch
):
    whole = tmp_path / "whole"
    adapt(adapt_config(tiny_text2img, whole, real_two_classes, epochs=2), progress=False)
    cut = tmp_path / "cut"
    real_step = stop_in_the_second_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        adapt(adapt_config(tiny_text2img, cut, real_two_classes, epochs=2), progress=False)
    monkeypatch.setattr(LoraParts, "step", real_step)
    state = cut / "state"
    saved = torch.load(state / "optimizer.pt", weights_only=True)
    assert set(saved) == {"optimizer"}  # fp32 on the CPU: no scaler
    torch.save(saved["optimizer"], state / "optimizer.pt")  # the file as earlier versions wrote it
    record = json.loads((state / "state.json").read_text())
    record["sha256"]["optimizer.pt"] = adapt_module.file_digest(state / "optimizer.pt")
    (state / "state.json").write_text(json.dumps(record))
    assert adapt(adapt_config(tiny_text2img, cut, real_two_classes, epochs=2), progress=False).steps_run == 3
    assert (cut / LORA_WEIGHTS).read_bytes() == (whole / LORA_WEIGHTS).read_bytes()


def test_the_epoch_loss_is_read_once_and_a_non_finite_step_is_a_divergence():
    assert adapt_module.epoch_loss([torch.tensor(1.0), torch.tensor(2.0), torch.tensor(4.5)], 0, 1e-4) == 2.5
    with pytest.raises(SynthgapError, match=r"the LoRA loss diverged \(nan in epoch 3\); lower --lr \(now 0.01\)"):
        adapt_module.epoch_loss([torch.tensor(1.0), torch.tensor(float("nan"))], 2, 1e-2)


def test_a_lora_trains_in_bf16_on_gpus_that_have_it_and_in_fp16_with_a_scaler_on_older_ones(monkeypatch):
    assert adapt_module.training_device_dtype("auto") == (torch.device("cpu"), torch.float32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert adapt_module.training_device_dtype("auto") == (torch.device("cuda"), torch.bfloat16)
    assert adapt_module.training_device_dtype("fp16") == (torch.device("cuda"), torch.float16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert adapt_module.training_device_dtype("auto") == (torch.device("cuda"), torch.float16)
