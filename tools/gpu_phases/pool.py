"""Pool-building phases: Stable Diffusion generation, segmentation (CLIPSeg, BiRefNet) and CLIP
scoring through pool_builder's own calls (``load_text_to_image_pipeline`` + ``run_text_to_image``, the
segmenter registry, ``ClipScorer``). Models have the real shapes and random weights (tiny shapes in
smoke mode), built once into ``<work dir>/models`` and loaded from there like downloaded ones."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch

from pool_builder.torch_utils import torch_dtype
from xpaste_mm.utils.io import build_folder_atomically

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
    """Images/s of text-to-image generation with the recipe's settings (SD-1.5's scheduler config
    swapped to DPM-Solver++, guidance 7.5, 512x512, fp16 on CUDA, batch 4; ``--sd-steps`` defaults to
    the recipe's 50)."""
    require_device(ctx.device)
    require_modules('diffusers', 'transformers', 'open_clip')
    from pool_builder import GenerateOptions, image_seed, load_text_to_image_pipeline
    from pool_builder.generate import run_text_to_image

    from .shaped_models import SD15, TINY_SD, save_sd_shaped_pipeline

    s = ctx.settings
    shape, name, size = (TINY_SD, 'sd-tiny', 64) if ctx.smoke else (SD15, 'sd15-shaped', 512)
    folder = build_folder_atomically(ctx.models_dir() / name, lambda f: save_sd_shaped_pipeline(f, shape))
    options = GenerateOptions(model=str(folder), num_inference_steps=s.sd_steps, height=size, width=size,
                              batch_size=s.sd_batch, safety_checker=False)
    pipe = load_text_to_image_pipeline(options.model, ctx.device, options.dtype, options.scheduler,
                                       options.safety_checker)
    prompts = [PROMPT.format(NAMES[i % len(NAMES)]) for i in range(options.batch_size)]
    seeds = [image_seed(s.seed, 1, i) for i in range(options.batch_size)]
    warm = dataclasses.replace(options, num_inference_steps=min(2, options.num_inference_steps))
    calls = iter([warm])

    def run() -> None:
        images = run_text_to_image(pipe, prompts, seeds, next(calls, options))
        if images[0].shape != (size, size, 3):
            raise RuntimeError(f'generated image shape {images[0].shape}, expected {(size, size, 3)}')

    done, seconds, memory = _timed_batches(ctx.device, ctx.budget, run, s.sd_batches)
    images = done * options.batch_size
    dtype = str(pipe.unet.dtype).replace('torch.', '')
    ctx.emit('images/s', images / seconds, 'img/s',
             f'{"tiny SD" if ctx.smoke else "SD-1.5-shaped"}, random weights; '
             f'{type(pipe.scheduler).__name__} {options.num_inference_steps} steps, guidance '
             f'{options.guidance_scale}, {size}x{size}, batch {options.batch_size}, {dtype}')
    ctx.emit('s/image', seconds / images, 's', f'{images} images')
    ctx.emit('UNet steps/s', done * options.num_inference_steps / seconds, 'steps/s',
             f'batch {options.batch_size} x2 (classifier-free guidance)')
    ctx.emit('peak memory', memory.allocated_mib, 'MiB', memory.kind)


def segment(ctx: PhaseContext) -> None:
    """Images/s of the ``clipseg`` (rd64-refined-shaped, fp32 as the segmenter's default) and
    ``birefnet`` (Swin-L at 1024 px, fp16 on CUDA) segmenters on 512x512 images."""
    require_device(ctx.device)
    require_modules('transformers', 'open_clip')
    from pool_builder import build_segmenter

    from .shaped_models import (
        CLIPSEG_RD64,
        SALIENT_SWIN_L,
        SALIENT_SWIN_TINY,
        TINY_CLIPSEG,
        SalientSwinNet,
        save_clipseg_shaped,
    )

    s = ctx.settings
    if ctx.smoke:
        clipseg, clipseg_name = TINY_CLIPSEG, 'clipseg-tiny'
        backbone, input_size, size, width = SALIENT_SWIN_TINY, 64, 64, 16
    else:
        clipseg, clipseg_name = CLIPSEG_RD64, 'clipseg-rd64-shaped'
        backbone, input_size, size, width = SALIENT_SWIN_L, 1024, 512, 128
    clipseg_dir = build_folder_atomically(ctx.models_dir() / clipseg_name,
                                          lambda f: save_clipseg_shaped(f, clipseg))
    images = _images(s.segment_batch, size, s.seed)
    texts = [PROMPT.format(NAMES[i % len(NAMES)]) for i in range(len(images))]
    torch.manual_seed(s.seed)
    net = SalientSwinNet(backbone, width).to(ctx.device, torch_dtype('auto', ctx.device)).eval()
    swin = 'tiny' if ctx.smoke else 'L'
    segmenters = (('clipseg', build_segmenter(dict(type='clipseg', model=str(clipseg_dir)), ctx.device),
                   clipseg_name),
                  ('birefnet', build_segmenter(dict(type='birefnet', module=net, input_size=input_size),
                                               ctx.device),
                   f'Swin-{swin} at {input_size} px'))
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
    from pool_builder import ClipScorer

    from .shaped_models import TINY_OPEN_CLIP, register_open_clip_config

    s = ctx.settings
    if ctx.smoke:
        model = register_open_clip_config(ctx.models_dir(), 'xpaste-tiny-clip', TINY_OPEN_CLIP)
        size = 64
    else:
        model, size = 'ViT-L-14', 512
    torch.manual_seed(s.seed)
    scorer = ClipScorer(model, pretrained=None, device=ctx.device)
    images = _images(s.score_batch, size, s.seed)
    text = PROMPT.format('mug')
    done, seconds, memory = _timed_batches(ctx.device, ctx.budget, lambda: scorer.score(images, text),
                                           s.score_batches)
    ctx.emit('images/s', done * len(images) / seconds, 'img/s',
             f'{model} random weights, {str(scorer.dtype).replace("torch.", "")}, batch {len(images)} of '
             f'{size}x{size}')
    ctx.emit('peak memory', memory.allocated_mib, 'MiB', memory.kind)
