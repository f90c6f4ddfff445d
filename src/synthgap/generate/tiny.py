"""Tiny random-weight diffusers pipelines for tests, benchmarks and offline trials.

They need no download: the tokenizer is a character-level CLIP BPE built from the 256 byte-level symbols, and every
model has a few thousand random (seeded) weights. Saved with ``save_pretrained``, they load back through exactly the
code path a Hugging Face model id takes, so ``synthgap generate`` can be tried end to end on a laptop::

    python -c "from synthgap.generate.tiny import save_tiny_text2img; save_tiny_text2img('tiny-sd')"
    synthgap generate text2img --model tiny-sd --classes cifar10 --per-class 2 --size 32 --steps 4 --out gen

The images are noise-like: these pipelines check plumbing (shapes, seeding, files), never image quality.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from synthgap.generate.quiet import library_bars_off

TEXT_DIM = 32  # cross-attention / text-encoder width
VISION_DIM = 32  # CLIP image embedding width of the unCLIP image encoder
MAX_LENGTH = 77
SAVING_LIBRARIES = ("diffusers", "transformers", "huggingface_hub")  # whose bars save_pretrained may draw


def tiny_tokenizer():
    """A character-level CLIPTokenizer: byte-level symbols (+ their ``</w>`` forms) and no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    tokens = alphabet + [symbol + "</w>" for symbol in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as folder:
        vocab, merges = Path(folder, "vocab.json"), Path(folder, "merges.txt")
        vocab.write_text(json.dumps({token: i for i, token in enumerate(tokens)}), encoding="utf-8")
        merges.write_text("#version: 0.2\n", encoding="utf-8")
        # model_max_length must be set: the default is "infinite", and padding to max length would explode.
        return CLIPTokenizer(str(vocab), str(merges), model_max_length=MAX_LENGTH)


def _text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        # pooling picks the EOS position by this id: it must be the tokenizer's
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=TEXT_DIM,
    )
    return CLIPTextModel(config)


def _unet(**extra):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
        **extra,
    )


def _vae():
    from diffusers import AutoencoderKL

    # two blocks: latents are half the image side, so callers always pass height/width explicitly
    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )


def _ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def tiny_text2img_pipeline(seed: int = 0):
    """A StableDiffusionPipeline with random weights (seeded), no safety checker."""
    from diffusers import StableDiffusionPipeline

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    return StableDiffusionPipeline(
        unet=_unet(),
        vae=_vae(),
        text_encoder=_text_encoder(tokenizer),
        tokenizer=tokenizer,
        scheduler=_ddim(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_unclip_pipeline(seed: int = 0):
    """A StableUnCLIPImg2ImgPipeline (image variations) with random weights (seeded)."""
    from diffusers import DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    vision = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=VISION_DIM,
            projection_dim=VISION_DIM,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            intermediate_size=37,
            patch_size=4,
        )
    )
    return StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
        image_encoder=vision,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=VISION_DIM),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tokenizer,
        text_encoder=_text_encoder(tokenizer),
        # the noised image embedding is concatenated with its noise-level embedding: 2 × the embedding width
        unet=_unet(class_embed_type="projection", projection_class_embeddings_input_dim=2 * VISION_DIM),
        scheduler=_ddim(),
        vae=_vae(),
    )


def save_tiny_text2img(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny text-to-image pipeline to `folder` (loadable with ``--model folder``)."""
    pipe = tiny_text2img_pipeline(seed)
    with library_bars_off(*SAVING_LIBRARIES):
        pipe.save_pretrained(folder)
    return Path(folder)


def save_tiny_unclip(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny unCLIP image-variation pipeline to `folder` (loadable with ``--model folder``)."""
    pipe = tiny_unclip_pipeline(seed)
    with library_bars_off(*SAVING_LIBRARIES):
        pipe.save_pretrained(folder)
    return Path(folder)


def tiny_clip_model(seed: int = 0):
    """A CLIPModel (text and vision towers) with random weights (seeded), for zero-shot scoring tests."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        eos_token_id=tokenizer.eos_token_id,  # pooling picks the EOS position by this id
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=TEXT_DIM,
    )
    vision = CLIPVisionConfig(
        hidden_size=VISION_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=4,
        projection_dim=TEXT_DIM,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=TEXT_DIM)
    return CLIPModel(config)


def save_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny CLIP (model, tokenizer, image processor; safetensors) to `folder` (``--clip-model folder``)."""
    from transformers import CLIPImageProcessor

    folder = Path(folder)
    model = tiny_clip_model(seed)
    with library_bars_off(*SAVING_LIBRARIES):
        model.save_pretrained(folder, safe_serialization=True)
        tiny_tokenizer().save_pretrained(folder)
        CLIPImageProcessor(size=32, crop_size=32).save_pretrained(folder)
    return folder
