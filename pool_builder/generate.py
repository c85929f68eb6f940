"""Stage ``generate``: text-to-image generation of candidate images per category.

Any diffusers text-to-image pipeline works (hub id or local folder). Every image has a recorded seed:
its initial noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)``, so it can be
regenerated on any device. Images ``[k*B, (k+1)*B)`` form batch ``k``; a resumed run regenerates
exactly the batches that have a missing image (the pipeline sees the same batch as in an
uninterrupted run) and writes only the missing files.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .errors import ConfigError
from .imaging import write_png
from .layout import WorkDir
from .manifest import ImageRecord, append_records, read_category_manifest
from .prompts import PromptOptions, build_prompts, prompt_for_index
from .records import remove_stale_temp_files
from .sharding import Shard, mark_done
from .stage import FailureLog, StageSummary, get_logger
from .vocabulary import Category, Vocabulary

DEFAULT_T2I_MODEL = 'runwayml/stable-diffusion-v1-5'


@dataclass(frozen=True)
class GenerateOptions:
    """Generation settings; the defaults are X-Paste's (SD 1.5, DPM-Solver++, 50 steps, cfg 7.5,
    512x512, fp16 on CUDA, 100 images per category in batches of 4).

    ``safety_checker=False`` removes the pipeline's NSFW checker (X-Paste never ran it because it
    decoded latents itself); by default the pipeline is used as loaded.
    """

    model: str = DEFAULT_T2I_MODEL
    scheduler: str | None = 'DPMSolverMultistepScheduler'
    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    height: int = 512
    width: int = 512
    dtype: str = 'auto'
    negative_prompt: str | None = None
    images_per_category: int = 100
    batch_size: int = 4
    seed: int = 0
    safety_checker: bool = True

    def __post_init__(self) -> None:
        if self.images_per_category < 1 or self.batch_size < 1 or self.num_inference_steps < 1:
            raise ConfigError('generate: images_per_category, batch_size and num_inference_steps must be '
                              '>= 1')
        if self.height % 8 or self.width % 8:
            raise ConfigError(f'generate: height/width must be multiples of 8, got {self.height}x'
                              f'{self.width}')


def torch_dtype(dtype: str, device: str):
    """``"auto"`` -> float16 on CUDA, float32 elsewhere; else the named torch dtype."""
    import torch

    if dtype == 'auto':
        return torch.float16 if str(device).startswith('cuda') else torch.float32
    names = {'fp16': 'float16', 'fp32': 'float32', 'bf16': 'bfloat16'}
    value = getattr(torch, names.get(dtype, dtype), None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(f'unknown dtype {dtype!r} (use auto, fp16, fp32 or bf16)')
    return value


def load_text_to_image_pipeline(model: str = DEFAULT_T2I_MODEL, device: str = 'cpu', dtype: str = 'auto',
                                scheduler: str | None = 'DPMSolverMultistepScheduler',
                                safety_checker: bool = True):
    """Load a diffusers text-to-image pipeline from a hub id or a local folder (``model_index.json``)
    and swap its scheduler for ``scheduler`` (a diffusers class name; None keeps it)."""
    import diffusers

    local = Path(model).expanduser()
    if (local.exists() or model.startswith(('.', '/', '~'))) and not (local / 'model_index.json').is_file():
        raise FileNotFoundError(f'{local} is not a diffusers pipeline folder (no model_index.json)')
    kwargs: dict[str, Any] = dict(torch_dtype=torch_dtype(dtype, device))
    if not safety_checker:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    with warnings.catch_warnings():  # newer diffusers renamed torch_dtype to dtype; older lack dtype
        warnings.filterwarnings('ignore', message='.*torch_dtype.*', category=FutureWarning)
        pipe = diffusers.DiffusionPipeline.from_pretrained(str(local) if local.exists() else model, **kwargs)
    if scheduler:
        scheduler_cls = getattr(diffusers, scheduler, None)
        if scheduler_cls is None or not hasattr(scheduler_cls, 'from_config'):
            raise ConfigError(f'generate: unknown diffusers scheduler {scheduler!r}')
        pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image_seed(base_seed: int, category_id: int, index: int) -> int:
    """The recorded seed of image ``index`` of a category (stable across runs and machines)."""
    digest = hashlib.sha256(f'{base_seed}:{category_id}:{index}'.encode()).digest()
    return int.from_bytes(digest[:4], 'little') & 0x7FFFFFFF


def run_text_to_image(pipe, prompts: Sequence[str], seeds: Sequence[int],
                      options: GenerateOptions) -> list[np.ndarray]:
    """One pipeline call: RGB uint8 (H, W, 3) images, one per (prompt, seed)."""
    import torch

    kwargs: dict[str, Any] = dict(
        prompt=list(prompts), num_inference_steps=options.num_inference_steps,
        guidance_scale=options.guidance_scale, height=options.height, width=options.width,
        generator=[torch.Generator('cpu').manual_seed(int(s)) for s in seeds], output_type='np')
    if options.negative_prompt:
        kwargs['negative_prompt'] = [options.negative_prompt] * len(prompts)
    images = pipe(**kwargs).images
    result = []
    for image in images:
        array = np.asarray(image.convert('RGB') if hasattr(image, 'convert') else image)
        if array.dtype != np.uint8:
            array = np.clip(np.rint(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        result.append(array)
    if len(result) != len(prompts):
        raise RuntimeError(f'the pipeline returned {len(result)} images for {len(prompts)} prompts')
    return result


def generate_images(work: WorkDir, vocabulary: Vocabulary, options: GenerateOptions = GenerateOptions(),
                    prompt_options: PromptOptions = PromptOptions(), shard: Shard = Shard(),
                    device: str = 'cpu', categories: Sequence[int] | None = None, pipeline=None,
                    logger: logging.Logger | None = None) -> StageSummary:
    """Generate ``options.images_per_category`` images for each category of this shard.

    Existing complete images are kept; a failing category is recorded under ``<work>/failures`` and
    the run goes on. ``pipeline`` may be a ready pipeline (else it is loaded on first need).
    """
    logger = logger or get_logger(work, shard)
    summary = StageSummary('generate')
    failures = FailureLog(work, 'generate', shard, summary, logger)
    todo = shard.select(vocabulary.subset(categories))
    prompts = build_prompts(vocabulary, prompt_options, todo)
    logger.info(f'generate: shard {shard}, {len(todo)} categories x {options.images_per_category} images '
                f'with {options.model} on {device}')
    plans = {}
    for category in todo:
        try:
            plans[category.id] = _missing_batches(work, category, options)
        except Exception as exc:  # e.g. an unreadable manifest: skip the category, keep going
            failures.record(f'category {category.id} ({category.name})', exc, with_traceback=True)
    summary.skipped = sum(options.images_per_category - sum(len(w) for _, w in plan)
                          for plan in plans.values())
    pipe = pipeline
    if pipe is None and any(plans.values()):  # a model that cannot load stops the run here
        pipe = load_text_to_image_pipeline(options.model, device, options.dtype, options.scheduler,
                                           options.safety_checker)
    for category in tqdm([c for c in todo if plans.get(c.id)], desc='generate', unit='category',
                         disable=None):
        try:
            for batch, wanted in plans[category.id]:
                summary.done += _generate_batch(work, pipe, category, batch, wanted, prompts[category.id],
                                                options)
        except Exception as exc:  # one category must not stop the run
            failures.record(f'category {category.id} ({category.name})', exc, with_traceback=True)
    mark_done(work, 'generate', shard)
    logger.info(str(summary))
    return summary


def _missing_batches(work: WorkDir, category: Category,
                     options: GenerateOptions) -> list[tuple[range, set[int]]]:
    remove_stale_temp_files(work.image_dir(category.safe_name))
    complete = {r.index for r in read_category_manifest(work, category.safe_name, ('generated',))
                if r.index is not None and work.resolve(r.image).is_file()}
    total, size = options.images_per_category, options.batch_size
    batches = []
    for start in range(0, total, size):
        batch = range(start, min(start + size, total))
        wanted = set(batch) - complete
        if wanted:
            batches.append((batch, wanted))
    return batches


def _generate_batch(work: WorkDir, pipe, category: Category, batch: range, wanted: set[int],
                    prompts: Sequence[str], options: GenerateOptions) -> int:
    seeds = [image_seed(options.seed, category.id, i) for i in batch]
    texts = [prompt_for_index(prompts, i) for i in batch]
    images = run_text_to_image(pipe, texts, seeds, options)
    records = []
    for index, seed, text, image in zip(batch, seeds, texts, images):
        if index not in wanted:
            continue
        stem = f'{index:04d}'
        path = write_png(work.image_dir(category.safe_name) / f'{stem}.png', image, durable=True)
        records.append(ImageRecord(
            key=f'{category.safe_name}/{stem}', category_id=category.id, name=category.name,
            safe_name=category.safe_name, stem=stem, image=work.relative(path), source='generated',
            seed=seed, prompt=text, index=index, generator=options.model))
    append_records(work, 'generated', category.safe_name, records)
    return len(records)
