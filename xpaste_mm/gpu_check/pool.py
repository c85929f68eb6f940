"""Pool-building phases: Stable Diffusion generation, segmentation (CLIPSeg, BiRefNet) and CLIP
scoring, through pool_builder's own calls (``run_text_to_image``, the segmenter registry,
``ClipScorer``). Full mode builds models with the real shapes and random weights; smoke mode uses
pool_builder's tiny models, loaded from their folders like real ones."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch

from .context import PhaseContext
from .measure import Budget, PeakMemory, synchronize
from .requirements import require_device, require_modules

PROMPT = 'a photo of a single {}'
NAMES = ('teddy_bear', 'traffic_light', 'mug', 'aerosol_can')


def _images(count: int, size: int, seed: int) -> list[np.ndarray]:
    """RGB uint8 stand-ins of generated images (content does not change the timings)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def _timed_batches(device: str, budget: Budget, run: Callable[[], object],
                   batches: int) -> tuple[int, float, PeakMemory]:
    """Call ``run()`` (one batch) once to warm up, then up to ``batches`` times within ``budget``;
    returns the timed calls, their seconds and their peak memory."""
    run()
    synchronize(device)
    done = 0
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        while done < batches and (done == 0 or not budget.spent()):
            run()
            done += 1
        synchronize(device)
        seconds = time.perf_counter() - started
    return done, seconds, memory


def generate(ctx: PhaseContext) -> None:
    """Images/s of text-to-image generation with the recipe's settings (DPM-Solver++, guidance 7.5,
    512x512, fp16 on CUDA, batch 4; ``--sd-steps`` defaults to the recipe's 50)."""
    require_device(ctx.device)
    require_modules('diffusers', 'transformers')
    from pool_builder.generate import (
        GenerateOptions,
        image_seed,
        load_text_to_image_pipeline,
        run_text_to_image,
    )

    s = ctx.settings
    if ctx.smoke:
        from pool_builder import build_tiny_stable_diffusion

        folder = build_tiny_stable_diffusion(ctx.models_dir() / 'tiny-sd', seed=s.seed)
        options = GenerateOptions(model=str(folder), num_inference_steps=s.sd_steps, height=64, width=64,
                                  batch_size=s.sd_batch, safety_checker=False)
        pipe = load_text_to_image_pipeline(options.model, ctx.device, options.dtype, options.scheduler,
                                           safety_checker=False)
        shape = 'tiny SD (pool_builder test model)'
    else:
        from pool_builder.generate import torch_dtype

        from .shaped_models import build_sd15_shaped_pipeline

        options = GenerateOptions(num_inference_steps=s.sd_steps, batch_size=s.sd_batch)
        pipe = build_sd15_shaped_pipeline(ctx.models_dir() / 'clip-bpe', ctx.device,
                                          torch_dtype(options.dtype, ctx.device), options.scheduler)
        shape = 'SD-1.5-shaped, random weights'
    prompts = [PROMPT.format(NAMES[i % len(NAMES)]) for i in range(options.batch_size)]
    seeds = [image_seed(s.seed, 1, i) for i in range(options.batch_size)]
    warm = dataclasses.replace(options, num_inference_steps=min(2, options.num_inference_steps))
    calls = iter([warm])

    def run() -> None:
        images = run_text_to_image(pipe, prompts, seeds, next(calls, options))
        if images[0].shape != (options.height, options.width, 3):
            raise RuntimeError(f'generated image shape {images[0].shape}, expected '
                               f'{(options.height, options.width, 3)}')

    done, seconds, memory = _timed_batches(ctx.device, ctx.budget, run, s.sd_batches)
    images = done * options.batch_size
    dtype = str(pipe.unet.dtype).replace('torch.', '')
    ctx.emit('images/s', images / seconds, 'img/s',
             f'{shape}; {type(pipe.scheduler).__name__} {options.num_inference_steps} steps, guidance '
             f'{options.guidance_scale}, {options.width}x{options.height}, batch {options.batch_size}, '
             f'{dtype}')
    ctx.emit('s/image', seconds / images, 's', f'{images} images')
    ctx.emit('UNet steps/s', done * options.num_inference_steps / seconds, 'steps/s',
             f'batch {options.batch_size} x2 (classifier-free guidance)')
    ctx.emit('peak memory', memory.allocated_mib, 'MiB', memory.kind)


def segment(ctx: PhaseContext) -> None:
    """Images/s of the ``clipseg`` (rd64-refined-shaped, fp32 as the segmenter's default) and
    ``birefnet`` (Swin-L at 1024 px, fp16 on CUDA) segmenters on 512x512 images."""
    require_device(ctx.device)
    require_modules('transformers')
    from pool_builder.generate import torch_dtype
    from pool_builder.segmenters import build_segmenter

    from .shaped_models import SALIENT_SWIN_L, SALIENT_SWIN_TINY, SalientSwinNet

    s = ctx.settings
    if ctx.smoke:
        from pool_builder import build_tiny_clipseg

        clipseg_dir = build_tiny_clipseg(ctx.models_dir() / 'tiny-clipseg', seed=s.seed)
        backbone, input_size, size, width = SALIENT_SWIN_TINY, 64, 64, 16
    else:
        from .fixtures import build_once
        from .shaped_models import save_clipseg_rd64_shaped

        clipseg_dir = build_once(ctx.models_dir() / 'clipseg-rd64-shaped', save_clipseg_rd64_shaped)
        backbone, input_size, size, width = SALIENT_SWIN_L, 1024, 512, 128
    images = _images(s.segment_batch, size, s.seed)
    texts = [PROMPT.format(NAMES[i % len(NAMES)]) for i in range(len(images))]
    torch.manual_seed(s.seed)
    net = SalientSwinNet(backbone, width).to(ctx.device, torch_dtype('auto', ctx.device)).eval()
    segmenters = (('clipseg', build_segmenter(dict(type='clipseg', model=str(clipseg_dir)), ctx.device),
                   'rd64-refined-shaped' if not ctx.smoke else 'tiny'),
                  ('birefnet', build_segmenter(dict(type='birefnet', module=net, input_size=input_size),
                                               ctx.device),
                   f'Swin-{"L" if not ctx.smoke else "tiny"} at {input_size} px'))
    for position, (name, segmenter, shape) in enumerate(segmenters):
        budget = ctx.budget.share(1.0 / (len(segmenters) - position))
        done, seconds, memory = _timed_batches(ctx.device, budget, lambda seg=segmenter: seg(images, texts),
                                               s.segment_batches)
        dtype = str(getattr(segmenter, 'dtype', '')).replace('torch.', '')
        ctx.emit(f'{name} images/s', done * len(images) / seconds, 'img/s',
                 f'{shape}, {dtype}, batch {len(images)} of {size}x{size}, random weights')
        ctx.emit(f'{name} peak memory', memory.allocated_mib, 'MiB', memory.kind)


def score(ctx: PhaseContext) -> None:
    """Images/s of CLIP scoring (``ClipScorer``: on-device preprocessing + image encoder) with open_clip
    ViT-L/14 built by ``open_clip.create_model('ViT-L-14', pretrained=None)`` (fp16 on CUDA), on
    512x512 composites, batch 32 as the recipe."""
    require_device(ctx.device)
    require_modules('open_clip')
    from pool_builder.scoring import ClipScorer

    s = ctx.settings
    if ctx.smoke:
        from pool_builder import build_tiny_open_clip

        model, size = str(build_tiny_open_clip(ctx.models_dir() / 'tiny-open-clip', seed=s.seed)), 64
    else:
        model, size = 'ViT-L-14', 512
    torch.manual_seed(s.seed)
    scorer = ClipScorer(model, pretrained=None, device=ctx.device)
    images = _images(s.score_batch, size, s.seed)
    text = PROMPT.format('mug')
    done, seconds, memory = _timed_batches(ctx.device, ctx.budget, lambda: scorer.score(images, text),
                                           s.score_batches)
    ctx.emit('images/s', done * len(images) / seconds, 'img/s',
             f'{"ViT-L-14" if not ctx.smoke else "tiny open_clip"} random weights, '
             f'{str(scorer.dtype).replace("torch.", "")}, batch {len(images)} of {size}x{size}')
    ctx.emit('peak memory', memory.allocated_mib, 'MiB', memory.kind)
