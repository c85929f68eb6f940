"""Every option of every stage, defined once: its config key, default and help.

A run config's section ``<stage> = dict(key=value, ...)`` and the flags of the stage command
(``xpaste-pool <stage> --key-with-dashes VALUE``) are both read into these dataclasses, so they have
the same names and the same defaults. Two exceptions, both spelled out in ``--help``:
``vocabulary.file`` is ``--vocab`` and ``vocabulary.categories`` takes ``1,5,9``.

Paths follow one rule, in a config file and on the command line alike: **inputs** (``vocabulary.file``,
``ingest.root``, ``stats.ann_file``, ``inspect.index``, model folders) are relative to the current
directory; **outputs** (``filter.xpaste_json``, ``stats.out``, ``inspect.out``) are relative to the work
dir (``stats`` and ``inspect`` run without one too: then the work dir is the current directory).

This module is imported by the command line before any stage runs: it must stay free of torch,
mmdet and the stage modules.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError, VocabularyError

#: Stages in pipeline order; the module ``pool_builder.<name>`` registers the stage class.
STAGE_ORDER = ('generate', 'ingest', 'segment', 'score', 'filter', 'stats', 'inspect')
#: Stages split by category over processes (the others run once, on rank 0).
SHARDED_STAGES = ('generate', 'ingest', 'segment', 'score')
#: Stages that run models on the run's device.
DEVICE_STAGES = ('generate', 'segment', 'score')
#: Stages that write the work dir: they need its vocabulary, hold a (stage, shard) lock while they
#: run and leave a done marker (``stats`` and ``inspect`` write only their ``out``).
WORK_DIR_STAGES = SHARDED_STAGES + ('filter',)
#: Sections of a run config that run unless set to None (the others run only when given).
DEFAULT_ON = ('segment', 'score', 'filter', 'inspect')

#: X-Paste's generation prompt.
DEFAULT_GENERATION_TEMPLATE = 'a photo of a single {name}'
#: X-Paste's text for CLIP scoring and for text-prompted segmenters.
DEFAULT_SCORE_TEMPLATE = 'a photo of {name}'
DEFAULT_T2I_MODEL = 'runwayml/stable-diffusion-v1-5'
DEFAULT_CLIP_MODEL = 'ViT-L-14'
DEFAULT_CLIP_PRETRAINED = 'openai'
INGEST_SOURCES = ('retrieved', 'own')


def option(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its command-line help (``meta``: ``flag`` renames the flag,
    ``stages`` limits the stage commands that offer it, ``choices`` lists the allowed values)."""
    return field(default=default, metadata=dict(help=help, **meta))


def _as_tuple(obj: Any, *names: str) -> None:
    """Store list values of frozen dataclass fields as tuples (configs give lists)."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, list):
            object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True)
class PromptOptions:
    """How generation prompts are made.

    ``templates`` are applied to the category name (underscores -> spaces); with ``synonyms`` they
    are also applied to every synonym; with ``definitions`` each template prompt is also repeated as
    ``"<prompt>, <definition>"``. A ``prompt_file`` adds user prompts per category.
    """

    templates: tuple[str, ...] = option((DEFAULT_GENERATION_TEMPLATE,), 'generation prompt templates with '
                                        '{name}', stages=('generate',))
    synonyms: bool = option(False, 'also prompt with every synonym', stages=('generate',))
    definitions: bool = option(False, 'also prompt with "<prompt>, <definition>"', stages=('generate',))
    prompt_file: str | None = option(None, 'extra prompts per category (JSON or TSV)', stages=('generate',))

    def __post_init__(self) -> None:
        _as_tuple(self, 'templates')
        for template in self.templates:
            if '{name}' not in template:
                raise VocabularyError(f'prompt template {template!r} must contain "{{name}}"')


@dataclass(frozen=True)
class VocabularyOptions(PromptOptions):
    """Section ``vocabulary``: the category file, an optional id subset, and the prompt options."""

    file: str | None = option(None, 'category file: LVIS/COCO annotation JSON, JSON list or text list '
                              '(default: the one recorded in the work dir)', flag='--vocab')
    categories: tuple[int, ...] | None = option(None, 'only these category ids, e.g. 1,5,9',
                                                stages=SHARDED_STAGES)

    def __post_init__(self) -> None:
        super().__post_init__()
        _as_tuple(self, 'categories')


@dataclass(frozen=True)
class GenerateOptions:
    """Section ``generate``; the defaults are X-Paste's (SD 1.5, DPM-Solver++, 50 steps, cfg 7.5,
    512x512, fp16 on CUDA, 100 images per category in batches of 4).

    ``safety_checker=False`` removes the pipeline's NSFW checker (X-Paste never ran it because it
    decoded latents itself); by default the pipeline is used as loaded.
    """

    model: str = option(DEFAULT_T2I_MODEL, 'diffusers text-to-image hub id or local folder')
    scheduler: str | None = option('DPMSolverMultistepScheduler', 'diffusers scheduler class '
                                   '("" or None keeps the pipeline\'s)')
    num_inference_steps: int = option(50, 'denoising steps')
    guidance_scale: float = option(7.5, 'classifier-free guidance scale')
    height: int = option(512, 'image height (multiple of 8)')
    width: int = option(512, 'image width (multiple of 8)')
    dtype: str = option('auto', 'auto (fp16 on CUDA), fp16, fp32 or bf16')
    negative_prompt: str | None = option(None, 'negative prompt')
    images_per_category: int = option(100, 'images to generate per category')
    batch_size: int = option(4, 'images per pipeline call')
    seed: int = option(0, 'base seed; the seed of every image derives from it')
    safety_checker: bool = option(True, "keep the pipeline's NSFW safety checker")

    def __post_init__(self) -> None:
        if self.scheduler == '':
            object.__setattr__(self, 'scheduler', None)
        if self.images_per_category < 1 or self.batch_size < 1 or self.num_inference_steps < 1:
            raise ConfigError('generate: images_per_category, batch_size and num_inference_steps must be '
                              '>= 1')
        if self.height % 8 or self.width % 8:
            raise ConfigError(f'generate: height/width must be multiples of 8, got {self.height}x'
                              f'{self.width}')


@dataclass(frozen=True)
class IngestOptions:
    """Section ``ingest``: your own or retrieved images, one sub-folder per category."""

    root: str | None = option(None, 'folder with one sub-folder of images per category (required)')
    source: str = option('retrieved', 'what the images are', choices=INGEST_SOURCES)
    copy: bool = option(False, 'copy the images into the work dir (default: reference them in place)')
    skip_unknown_folders: bool = option(False, 'skip sub-folders that match no category (default: '
                                        'refuse them)')

    def __post_init__(self) -> None:
        if self.source not in INGEST_SOURCES:
            raise ConfigError(f'ingest: source must be one of {INGEST_SOURCES}, got {self.source!r}')


@dataclass(frozen=True)
class SegmentOptions:
    """Section ``segment``: segmenters as ``TYPE[:key=value,...]`` strings or ``dict(type=...)``."""

    segmenters: tuple = option(('grabcut',), 'segmenters, e.g. grabcut '
                               'clipseg:model=CIDAS/clipseg-rd64-refined birefnet:model=/models/BiRefNet')
    batch_size: int = option(8, 'images per segmenter call')

    def __post_init__(self) -> None:
        _as_tuple(self, 'segmenters')
        if self.batch_size < 1:
            raise ConfigError('segment: batch_size must be >= 1')
        if not self.segmenters:
            raise ConfigError('segment: segmenters must name at least one segmenter')


@dataclass(frozen=True)
class ScoreOptions:
    """Section ``score`` (X-Paste: OpenAI ViT-L/14, "a photo of {name}", threshold 128)."""

    model: str = option(DEFAULT_CLIP_MODEL, 'open_clip model name, hf-hub: id or local folder')
    pretrained: str | None = option(DEFAULT_CLIP_PRETRAINED, 'pretrained tag or checkpoint file')
    precision: str = option('auto', 'auto (fp16 on CUDA), fp32, fp16, bf16')
    batch_size: int = option(32, 'images per CLIP call')
    template: str = option(DEFAULT_SCORE_TEMPLATE, 'scoring text with {name}')
    segmenters: tuple[str, ...] | None = option(None, 'segmenter folders to score (default: all)')

    def __post_init__(self) -> None:
        _as_tuple(self, 'segmenters')
        if self.batch_size < 1:
            raise ConfigError('score: batch_size must be >= 1')


@dataclass(frozen=True)
class FilterRule:
    """X-Paste's selection rule; the defaults are X-Paste's README values."""

    min_clip: float = option(21.0, 'absolute CLIP score bar')
    min_area: float = option(0.05, 'smallest mask area (fraction of the image)')
    max_area: float = option(0.95, 'largest mask area (fraction of the image)')
    tolerance: float = option(1.0, 'the bar drops to (best score of the category - tolerance) when '
                              'that is lower')

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_area <= self.max_area <= 1.0:
            raise ConfigError(f'filter: need 0 <= min_area <= max_area <= 1, got {self.min_area}, '
                              f'{self.max_area}')
        if self.tolerance < 0:
            raise ConfigError(f'filter: tolerance must be >= 0, got {self.tolerance}')


@dataclass(frozen=True)
class FilterOptions(FilterRule):
    """Section ``filter``: the rule plus how to apply it."""

    workers: int | None = option(0, 'crop processes (0 or None: all cores)')
    segmenters: tuple[str, ...] | None = option(None, 'segmenters to choose from, in tie-break order '
                                                '(default: all with scores, by name)')
    overwrite: bool = option(False, 'recompute crops that look up to date')
    xpaste_json: str | None = option(None, "also export X-Paste's pool JSON to this path")
    crop_levels: bool = option(True, 'also store every crop as raw BGRA at longer sides 32/64/128/256 px in '
                               'one memory-mapped file beside the index, so a cold paste reads no PNG '
                               '(about 3x the PNG bytes on disk; see xpaste_mm.datasets.crop_store)')

    def __post_init__(self) -> None:
        super().__post_init__()
        _as_tuple(self, 'segmenters')

    @property
    def rule(self) -> FilterRule:
        return FilterRule(**{f.name: getattr(self, f.name) for f in fields(FilterRule)})


@dataclass(frozen=True)
class StatsOptions:
    """Section ``stats``: category size statistics and image counts of a training annotation file."""

    ann_file: str | None = option(None, 'training annotation JSON (required)')
    out: str = option('category_stats.json', 'statistics file to write')


@dataclass(frozen=True)
class InspectOptions:
    """Section ``inspect``: report, histograms and contact sheets of a pool index."""

    index: str | None = option(None, "pool index to inspect (default: the work dir's pool)")
    out: str = option('report', 'report folder')
    min_instances: int = option(10, 'flag categories with fewer instances')
    per_sheet: int = option(48, 'best-scored instances per contact sheet')


STAGE_OPTIONS: dict[str, type] = dict(generate=GenerateOptions, ingest=IngestOptions, segment=SegmentOptions,
                                      score=ScoreOptions, filter=FilterOptions, stats=StatsOptions,
                                      inspect=InspectOptions)
#: Every dict section of a run config and its options class.
SECTION_OPTIONS: dict[str, type] = dict(vocabulary=VocabularyOptions, **STAGE_OPTIONS)


def options_from_config(cls: type, config: dict | None, section: str) -> Any:
    """Build the options dataclass ``cls`` from a config section, naming unknown keys."""
    config = dict(config or {})
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f'{section}: unknown option(s) {unknown}; allowed: {sorted(allowed)}')
    return cls(**config)
