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
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError
from .imaging import write_png
from .layout import WorkDir
from .manifest import ImageRecord, append_records, read_category_manifest
from .options import GenerateOptions, PromptOptions
from .prompts import build_prompts, prompt_for_index
from .sharding import Shard
from .stage import Stage, StageSummary, register_stage
from .torch_utils import torch_dtype
from .vocabulary import Category, Vocabulary

__all__ = ['GenerateOptions', 'GenerateStage', 'generate_images', 'image_seed', 'load_text_to_image_pipeline',
           'run_text_to_image']

def load_text_to_image_pipeline(model: str = GenerateOptions.model, device: str = 'cpu',
                                dtype: str = GenerateOptions.dtype,
                                scheduler: str | None = GenerateOptions.scheduler,
                                safety_checker: bool = GenerateOptions.safety_checker):
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


@register_stage
class GenerateStage(Stage):
    """Stage ``generate``: ``options.images_per_category`` images for each category of this shard.

    Existing complete images are kept; a failing category is recorded under ``<work>/failures`` and
    the run goes on. The model is loaded only when some image is missing.

    Args:
        options (GenerateOptions): generation settings.
        prompt_options (PromptOptions): how prompts are made (the run config's ``vocabulary``).
        pipeline: a ready diffusers pipeline (default: loaded from ``options.model`` on first need).
        Others: see :class:`~pool_builder.stage.Stage`.
    """

    name = 'generate'
    options_cls = GenerateOptions

    def __init__(self, *args, prompt_options: PromptOptions = PromptOptions(), pipeline=None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prompt_options = prompt_options
        self.pipeline = pipeline
        self.plans: dict[int, list[tuple[range, set[int]]]] = {}
        self.prompts: dict[int, tuple[str, ...]] = {}

    def prepare(self, todo: Sequence[Category]) -> None:
        options = self.options
        self.prompts = build_prompts(self.vocabulary, self.prompt_options, todo)
        self.logger.info(f'generate: shard {self.shard}, {len(todo)} categories x '
                         f'{options.images_per_category} images with {options.model} on {self.device}')
        for category in todo:
            try:
                self.plans[category.id] = _missing_batches(self.work, category, options)
            except Exception as exc:  # e.g. an unreadable manifest: skip the category, keep going
                self.failures.record(f'category {category.id} ({category.name})', exc, with_traceback=True)
        self.summary.skipped = sum(options.images_per_category - sum(len(w) for _, w in plan)
                                   for plan in self.plans.values())
        if self.pipeline is None and any(self.plans.values()):  # a model that cannot load stops here
            self.pipeline = load_text_to_image_pipeline(options.model, self.device, options.dtype,
                                                        options.scheduler, options.safety_checker)

    def temp_folders(self, category: Category) -> list[Path]:
        return [self.work.image_dir(category.safe_name)]

    def process_category(self, category: Category) -> None:
        for batch, wanted in self.plans.get(category.id, ()):
            self.summary.done += _generate_batch(self.work, self.pipeline, category, batch, wanted,
                                                 self.prompts[category.id], self.options)


def generate_images(work: WorkDir, vocabulary: Vocabulary, options: GenerateOptions = GenerateOptions(),
                    prompt_options: PromptOptions = PromptOptions(), shard: Shard = Shard(),
                    device: str = 'cpu', categories: Sequence[int] | None = None, pipeline=None,
                    logger: logging.Logger | None = None) -> StageSummary:
    """Run :class:`GenerateStage` (``pipeline``: a ready pipeline, else loaded on first need)."""
    return GenerateStage(work, vocabulary, options, shard, device, categories, logger,
                         prompt_options=prompt_options, pipeline=pipeline).run()


def _missing_batches(work: WorkDir, category: Category,
                     options: GenerateOptions) -> list[tuple[range, set[int]]]:
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
