"""Randomly initialised models with the real models' shapes, written to local folders that the pool
builder loads like downloaded ones (no download): Stable Diffusion 1.5, CLIPSeg ``rd64-refined``, a
BiRefNet-like Swin-L salient-object network and an open_clip model config. Their outputs are
meaningless; their compute and memory are those of the real models. Each comes in a tiny variant with
the same code path for the CPU smoke run.
"""
from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

CLIP_TEXT_IDS = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                     pad_token_id=49407)

#: SD-1.5's ``unet/config.json`` (860 M parameters), ``vae/config.json`` (84 M) and text encoder
#: (OpenAI CLIP ViT-L/14's text tower, 123 M), and its scheduler betas (the recipe swaps in DPM-Solver++
#: with them, ``from_config``).
SD15 = dict(
    unet=dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
              block_out_channels=(320, 640, 1280, 1280),
              down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                                'DownBlock2D'),
              up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                              'CrossAttnUpBlock2D'),
              cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32),
    vae=dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
             down_block_types=('DownEncoderBlock2D',) * 4, up_block_types=('UpDecoderBlock2D',) * 4,
             layers_per_block=2, norm_num_groups=32, sample_size=512),
    text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              hidden_act='quick_gelu', projection_dim=768, **CLIP_TEXT_IDS),
    scheduler=dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                   beta_schedule='scaled_linear', steps_offset=1, skip_prk_steps=True,
                   set_alpha_to_one=False))
TINY_SD = dict(
    unet=dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
              down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D'),
              up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D'), cross_attention_dim=32,
              attention_head_dim=8, norm_num_groups=32),
    vae=dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
             down_block_types=('DownEncoderBlock2D',) * 2, up_block_types=('UpDecoderBlock2D',) * 2,
             norm_num_groups=32, sample_size=64),
    text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              **CLIP_TEXT_IDS),
    scheduler=SD15['scheduler'])

#: ``CIDAS/clipseg-rd64-refined``: ViT-B/16 at 352 px, reduce dim 64, refined decoder.
CLIPSEG_RD64 = dict(
    text_config=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12,
                     **CLIP_TEXT_IDS),
    vision_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                       image_size=352, patch_size=16),
    projection_dim=512, reduce_dim=64, extract_layers=[3, 6, 9], decoder_num_attention_heads=4,
    decoder_intermediate_size=2048, conditional_layer=0, use_complex_transposed_convolution=True)
TINY_CLIPSEG = dict(
    text_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                     **CLIP_TEXT_IDS),
    vision_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                       image_size=32, patch_size=8),
    projection_dim=32, reduce_dim=16, extract_layers=[0, 1], decoder_num_attention_heads=2,
    decoder_intermediate_size=32, conditional_layer=0)

#: BiRefNet's default backbone (swin_v1_l): Swin-L, window 12, run at BiRefNet's 1024 px input.
SALIENT_SWIN_L = dict(pretrain_img_size=384, embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48),
                      window_size=12, out_indices=(0, 1, 2, 3), init_cfg=None)
SALIENT_SWIN_TINY = dict(pretrain_img_size=64, embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8),
                         window_size=4, mlp_ratio=2, out_indices=(0, 1, 2, 3), init_cfg=None)

#: An open_clip model config (registered under a name with ``open_clip.add_model_config``) for smoke runs.
TINY_OPEN_CLIP = dict(embed_dim=32,
                      vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16),
                      text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=4, layers=2))


def save_clip_tokenizer(folder: str | Path):
    """Write OpenAI CLIP's BPE tokenizer (SD-1.5's and CLIPSeg's) to ``folder`` as ``vocab.json`` +
    ``merges.txt``, from the BPE table bundled with open_clip (no download), and load it."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(default_bpe()).read().decode('utf-8').split('\n')
    merges = lines[1:49152 - 256 - 2 + 1]  # the merges CLIP uses (as CLIP's own tokenizer)
    alphabet = list(bytes_to_unicode().values())
    vocab = alphabet + [c + '</w>' for c in alphabet] + [''.join(m.split()) for m in merges]
    vocab += ['<|startoftext|>', '<|endoftext|>']
    ids = {token: i for i, token in enumerate(vocab)}
    (folder / 'vocab.json').write_text(json.dumps(ids), encoding='utf-8')
    (folder / 'merges.txt').write_text('\n'.join(['#version: 0.2', *merges]) + '\n', encoding='utf-8')
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


def save_sd_shaped_pipeline(folder: str | Path, shape: dict) -> None:
    """Save a ``StableDiffusionPipeline`` with ``shape``'s UNet/VAE/text encoder (random weights, fp16
    on disk), the real CLIP tokenizer and SD-1.5's PNDM scheduler config to ``folder``: what
    ``load_text_to_image_pipeline`` loads from a downloaded SD-1.5. No safety checker (X-Paste never ran
    it)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with tempfile.TemporaryDirectory() as bpe:
        tokenizer = save_clip_tokenizer(bpe)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**shape['vae']), text_encoder=CLIPTextModel(CLIPTextConfig(**shape['text'])),
        tokenizer=tokenizer, unet=UNet2DConditionModel(**shape['unet']),
        scheduler=PNDMScheduler(**shape['scheduler']), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.to(dtype=torch.float16).save_pretrained(folder)


def save_clipseg_shaped(folder: str | Path, config: dict) -> None:
    """Save a CLIPSeg built from ``config`` (random weights) and its processor (the real CLIP tokenizer,
    ImageNet normalisation at the vision tower's size) to ``folder``, loadable by the ``clipseg``
    segmenter."""
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, ViTImageProcessor

    from pool_builder.segmenters.salient import IMAGENET_MEAN, IMAGENET_STD

    with tempfile.TemporaryDirectory() as bpe:
        tokenizer = save_clip_tokenizer(bpe)
    size = config['vision_config']['image_size']
    processor = CLIPSegProcessor(
        image_processor=ViTImageProcessor(do_resize=True, size={'height': size, 'width': size}, resample=2,
                                          image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD)),
        tokenizer=tokenizer)
    CLIPSegForImageSegmentation(CLIPSegConfig(**config)).save_pretrained(folder)
    processor.save_pretrained(folder)


def register_open_clip_config(folder: str | Path, name: str, config: dict) -> str:
    """Write ``config`` as ``folder/<name>.json`` and register it with open_clip, so
    ``open_clip.create_model(name, pretrained=None)`` builds it; returns ``name``."""
    import open_clip

    path = Path(folder) / f'{name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config), encoding='utf-8')
    open_clip.add_model_config(path)
    return name


class SalientSwinNet(nn.Module):
    """BiRefNet's interface and backbone cost: mmdet's ``SwinTransformer(**backbone)``, a top-down
    decoder over its four stages (``width`` channels) and a 1-channel head; ``forward`` takes an
    ImageNet-normalised (B, 3, H, W) batch and returns ``[coarse, fine]`` logits, the last at input
    resolution, like BiRefNet."""

    def __init__(self, backbone: dict, width: int = 128) -> None:
        super().__init__()
        from mmdet.models.backbones import SwinTransformer

        self.backbone = SwinTransformer(**backbone)
        channels = [backbone['embed_dims'] * 2**i for i in range(4)]
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.smooth = nn.ModuleList(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
                                    for _ in channels)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        feats = self.backbone(pixel_values)
        x = self.smooth[-1](self.lateral[-1](feats[-1]))
        coarse = self.head(x)
        for lateral, smooth, feat in zip(self.lateral[-2::-1], self.smooth[-2::-1], feats[-2::-1]):
            up = F.interpolate(x, size=feat.shape[-2:], mode='bilinear', align_corners=False)
            x = smooth(lateral(feat) + up)
        fine = F.interpolate(self.head(x), size=pixel_values.shape[-2:], mode='bilinear', align_corners=False)
        return [coarse, fine]
