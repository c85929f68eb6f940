"""Tiny models with random weights, written to local folders, for offline tests and demos.

Each builder writes a folder that the real loading code accepts (``from_pretrained`` /
open_clip ``local-dir:``), so the pipeline runs end to end with no download. The weights are random:
outputs have the right types and shapes but no meaning. Builders are idempotent: an existing
complete folder is returned as is (folders are assembled in a temporary sibling and renamed).
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from xpaste_mm.utils.io import build_folder_atomically

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TEXT_WIDTH = 32


@dataclass(frozen=True)
class TinyModels:
    """Folders of the four tiny models (pass them wherever a hub id is accepted)."""

    stable_diffusion: Path
    clipseg: Path
    open_clip: Path
    birefnet: Path


def build_tiny_models(root: str | os.PathLike, seed: int = 0) -> TinyModels:
    """Build (or reuse) all tiny models under ``root``."""
    root = Path(root)
    return TinyModels(stable_diffusion=build_tiny_stable_diffusion(root / 'tiny-sd', seed),
                      clipseg=build_tiny_clipseg(root / 'tiny-clipseg', seed),
                      open_clip=build_tiny_open_clip(root / 'tiny-open-clip', seed),
                      birefnet=build_tiny_birefnet(root / 'tiny-birefnet', seed))


def _byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (printable Latin-1 bytes map to themselves,
    the others to code points from 256 upward)."""
    printable = [*range(ord('!'), ord('~') + 1), *range(ord('¡'), ord('¬') + 1), *range(ord('®'), 256)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def make_tiny_clip_tokenizer():
    """A CLIP tokenizer over single bytes (514 tokens, no merges): every text tokenizes, one token
    per byte, with CLIP's start/end tokens and a 77-token limit."""
    from transformers import CLIPTokenizer

    vocab = {'<|startoftext|>': 0, '<|endoftext|>': 1}
    for suffix in ('', '</w>'):
        for char in _byte_level_alphabet():
            vocab[char + suffix] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for model initialisation without disturbing the caller's state."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def build_tiny_stable_diffusion(target: str | os.PathLike, seed: int = 0) -> Path:
    """A Stable-Diffusion-shaped pipeline (UNet 32/64 channels, 2x VAE, 2-layer CLIP text encoder)
    saved with ``save_pretrained``; it makes 64x64 images by default (any multiple of 8 works)."""
    def fill(folder: Path) -> None:
        from diffusers import (
            AutoencoderKL,
            DPMSolverMultistepScheduler,
            StableDiffusionPipeline,
            UNet2DConditionModel,
        )
        from transformers import CLIPTextConfig, CLIPTextModel

        tokenizer = make_tiny_clip_tokenizer()
        with _seeded(seed):
            unet = UNet2DConditionModel(
                sample_size=32, in_channels=4, out_channels=4, layers_per_block=1,
                block_out_channels=(32, 64), down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D'),
                up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D'), cross_attention_dim=TEXT_WIDTH,
                attention_head_dim=8, norm_num_groups=32)
            vae = AutoencoderKL(
                in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
                down_block_types=('DownEncoderBlock2D',) * 2, up_block_types=('UpDecoderBlock2D',) * 2,
                norm_num_groups=32, sample_size=64)
            text_encoder = CLIPTextModel(CLIPTextConfig(
                vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=64,
                num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=77,
                bos_token_id=0, eos_token_id=1, pad_token_id=1))
        scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012,
                                                beta_schedule='scaled_linear', steps_offset=1)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.save_pretrained(folder)
    return build_folder_atomically(target, fill)


def build_tiny_clipseg(target: str | os.PathLike, seed: int = 0) -> Path:
    """A CLIPSeg model (2-layer text/vision towers, 32x32 input) plus its processor, saved with
    ``save_pretrained`` (loadable by ``CLIPSegForImageSegmentation``/``CLIPSegProcessor``)."""
    def fill(folder: Path) -> None:
        from transformers import (
            CLIPSegConfig,
            CLIPSegForImageSegmentation,
            CLIPSegProcessor,
            ViTImageProcessor,
        )

        tokenizer = make_tiny_clip_tokenizer()
        config = CLIPSegConfig(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=64,
                             num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=77,
                             bos_token_id=0, eos_token_id=1, pad_token_id=1),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                               num_hidden_layers=2, image_size=32, patch_size=8),
            projection_dim=32, reduce_dim=16, extract_layers=[0, 1], decoder_num_attention_heads=2,
            decoder_intermediate_size=32, conditional_layer=0)
        with _seeded(seed):
            model = CLIPSegForImageSegmentation(config)
        processor = CLIPSegProcessor(
            image_processor=ViTImageProcessor(do_resize=True, size={'height': 32, 'width': 32},
                                              image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD)),
            tokenizer=tokenizer)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return build_folder_atomically(target, fill)


def build_tiny_open_clip(target: str | os.PathLike, seed: int = 0) -> Path:
    """An open_clip ViT (2 layers, width 32, 32x32 input, OpenAI preprocessing) as a ``local-dir``
    folder: ``open_clip_config.json`` + ``open_clip_model.safetensors``."""
    def fill(folder: Path) -> None:
        from open_clip.model import CLIP
        from safetensors.torch import save_file

        config = dict(
            model_cfg=dict(embed_dim=32,
                           vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16),
                           text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=4, layers=2)),
            preprocess_cfg=dict(size=32, mean=list(CLIP_MEAN), std=list(CLIP_STD), interpolation='bicubic',
                                resize_mode='shortest'))
        (folder / 'open_clip_config.json').write_text(json.dumps(config, indent=1), encoding='utf-8')
        with _seeded(seed):
            model = CLIP(**config['model_cfg'])
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(folder / 'open_clip_model.safetensors'))
    return build_folder_atomically(target, fill)


def build_tiny_birefnet(target: str | os.PathLike, seed: int = 0) -> Path:
    """A tiny BiRefNet-interface model saved with its code (``auto_map``), loadable with
    ``AutoModelForImageSegmentation.from_pretrained(folder, trust_remote_code=True)``."""
    def fill(folder: Path) -> None:
        from . import tiny_salient_model

        config = tiny_salient_model.TinySalientConfig(channels=8)
        config.auto_map = {'AutoConfig': 'modeling_tiny_salient.TinySalientConfig',
                           'AutoModelForImageSegmentation': 'modeling_tiny_salient.TinySalientNet'}
        with _seeded(seed):
            model = tiny_salient_model.TinySalientNet(config)
        model.save_pretrained(folder)
        shutil.copyfile(tiny_salient_model.__file__, folder / 'modeling_tiny_salient.py')
    return build_folder_atomically(target, fill)
