"""Running several stages from one config, and the one-call "images -> pool" path.

Run config (an mmengine config file: ``.py`` with ``_base_`` inheritance, ``.json`` or ``.yaml``)::

    work_dir = 'work_dirs/pool_lvis'
    device = 'auto'                       # or 'cuda', 'cpu'; --device overrides
    vocabulary = dict(file='lvis_v1_train.json', categories=None,      # optional id subset
                      templates=['a photo of a single {name}'], synonyms=False, definitions=False,
                      prompt_file=None)
    generate = dict(model='runwayml/stable-diffusion-v1-5', images_per_category=100, ...)  # or None
    ingest = dict(root='retrieved/', source='retrieved', copy=False)                       # or None
    segment = dict(segmenters=['grabcut', dict(type='clipseg')], batch_size=8)
    score = dict(model='ViT-L-14', pretrained='openai', batch_size=32)
    filter = dict(min_clip=21.0, min_area=0.05, max_area=0.95, tolerance=1.0, workers=8,
                  segmenters=None, overwrite=False, xpaste_json='pool/xpaste_pool.json')
    stats = dict(ann_file='lvis_v1_train.json', out='category_stats.json')              # or None
    inspect = dict(min_instances=10, per_sheet=48, out='report')                        # or None

A section set to None is skipped. Under a multi-process launch, generate/ingest/segment/score are
sharded by category; rank 0 then waits for every shard's ``score`` marker and runs the rest.
"""
from __future__ import annotations

import copy
import gc
import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path

from .build import BuildSummary, build_pool
from .errors import ConfigError
from .generate import GenerateOptions, generate_images
from .ingest import ingest_images
from .layout import WorkDir
from .prompts import as_prompt_options
from .scoring import ClipScorer, ScoreOptions, score_masks
from .selection import FilterRule
from .sharding import Shard, resolve_device, resolve_run_id, resolve_shard, wait_for_shards
from .stage import get_logger, options_from_config
from .workspace import open_vocabulary

STAGES = ('generate', 'ingest', 'segment', 'score', 'filter', 'stats', 'inspect')
SHARDED_STAGES = ('generate', 'ingest', 'segment', 'score')
DEFAULT_RUN_CONFIG: dict = dict(
    work_dir=None,
    device='auto',
    vocabulary=dict(file=None, categories=None),
    generate=None,
    ingest=None,
    segment=dict(segmenters=['grabcut'], batch_size=8),
    score=dict(),
    filter=dict(),
    stats=None,
    inspect=dict(),
)
_SECTION_KEYS = dict(
    vocabulary={'file', 'categories', 'templates', 'synonyms', 'definitions', 'prompt_file'},
    ingest={'root', 'source', 'copy', 'skip_unknown_folders'},
    segment={'segmenters', 'batch_size'},
    filter={'min_clip', 'min_area', 'max_area', 'tolerance', 'workers', 'segmenters', 'overwrite',
            'xpaste_json'},
    stats={'ann_file', 'out'},
    inspect={'min_instances', 'per_sheet', 'out'},
    generate={f.name for f in fields(GenerateOptions)},
    score={f.name for f in fields(ScoreOptions)},
)


def load_run_config(path: str | os.PathLike, overrides: Mapping | None = None) -> dict:
    """Read a run config file, apply ``overrides`` (``--cfg-options`` style dotted keys) and check
    it; returns a plain dict with every section present."""
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'run config {path} does not exist')
    try:
        cfg = Config.fromfile(str(path))
    except Exception as exc:
        raise ConfigError(f'{path}: cannot parse the config ({exc})') from exc
    if overrides:
        cfg.merge_from_dict(dict(overrides))
    return normalize_run_config(cfg.to_dict(), where=str(path))


def normalize_run_config(config: Mapping, where: str = 'run config') -> dict:
    """Fill defaults and reject unknown sections/keys (typos fail loudly)."""
    known = set(DEFAULT_RUN_CONFIG) | {'stages'}
    # Other plain values are helper variables of the config file (e.g. ann_file = '...').
    unknown = sorted(k for k, v in dict(config).items() if k not in known and isinstance(v, Mapping))
    if unknown:
        raise ConfigError(f'{where}: unknown section(s) {unknown}; known: {sorted(known)}')
    config = {k: v for k, v in dict(config).items() if k in known}
    merged = copy.deepcopy(DEFAULT_RUN_CONFIG)
    for key, value in copy.deepcopy(config).items():
        default = merged.get(key)
        merged[key] = {**default, **value} if isinstance(default, dict) and isinstance(value, Mapping) \
            else value
    if not merged['work_dir']:
        raise ConfigError(f'{where}: "work_dir" is required')
    for section, allowed in _SECTION_KEYS.items():
        value = merged.get(section)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f'{where}: section "{section}" must be a dict or None')
        bad = sorted(set(value) - allowed)
        if bad:
            raise ConfigError(f'{where}: unknown key(s) {bad} in "{section}"; allowed: {sorted(allowed)}')
    stages = merged.get('stages')
    if stages is not None:
        bad = sorted(set(stages) - set(STAGES))
        if bad:
            raise ConfigError(f'{where}: unknown stage(s) {bad}; stages are {list(STAGES)}')
    return merged


def run_pipeline(config: Mapping, stages: Sequence[str] | None = None, shard: Shard | None = None,
                 device: str | None = None) -> dict:
    """Run the configured stages in order; returns ``{stage: summary}``.

    ``stages`` (or the config's ``stages``) restricts what runs; sections set to None never run.
    """
    config = normalize_run_config(config)
    shard = shard or resolve_shard()
    work = WorkDir(config['work_dir'])
    logger = get_logger(work, shard)
    vocab_cfg = dict(config['vocabulary'])
    vocabulary = open_vocabulary(work, vocab_cfg.pop('file'))
    categories = vocab_cfg.pop('categories')
    prompt_options = as_prompt_options(vocab_cfg)
    wanted = [s for s in (stages or config.get('stages') or STAGES) if config.get(s) is not None]
    unknown = sorted(set(stages or ()) - set(STAGES))
    if unknown:
        raise ConfigError(f'unknown stage(s) {unknown}; stages are {list(STAGES)}')
    device = resolve_device(device or config['device'], shard)
    logger.info(f'run: stages {wanted} in {work.root} (shard {shard}, device {device})')
    results: dict = {}
    for stage in wanted:
        if stage not in SHARDED_STAGES and shard.world_size > 1:
            if shard.rank != 0 or not _wait_for_other_shards(work, wanted, shard, logger):
                break
        section = config[stage]
        if stage == 'generate':
            results[stage] = generate_images(work, vocabulary, options_from_config(
                GenerateOptions, section, 'generate'), prompt_options, shard, device, categories,
                logger=logger)
        elif stage == 'ingest':
            results[stage] = _run_ingest(work, vocabulary, section, shard, categories, logger)
        elif stage == 'segment':
            results[stage] = _run_segment(work, vocabulary, section, shard, device, categories, logger)
        elif stage == 'score':
            results[stage] = _run_score(work, vocabulary, section, shard, device, categories, logger)
        elif stage == 'filter':
            results[stage] = _run_filter(work, vocabulary, section, logger)
        elif stage == 'stats':
            results[stage] = _run_stats(work, section)
        elif stage == 'inspect':
            from .report import inspect_pool

            results[stage] = inspect_pool(work.pool_index, work.resolve(section.get('out', 'report')),
                                          vocabulary, section.get('min_instances', 10),
                                          section.get('per_sheet', 48))
        _release_memory()
    return results


def _wait_for_other_shards(work, wanted, shard, logger) -> bool:
    """Rank 0's barrier before the unsharded stages; False when the launch has no shared run id
    (independent ``--shard`` processes): then run ``filter`` separately once all shards are done."""
    sharded = [s for s in SHARDED_STAGES if s in wanted]
    if not sharded:
        return True
    run_id = resolve_run_id()
    if not run_id:
        logger.warning('run: this shard is done; without a shared run id (torchrun, SLURM or '
                       'POOL_BUILDER_RUN_ID) rank 0 cannot tell when the other shards finish, so run '
                       'the remaining stages separately (e.g. `xpaste-pool run CONFIG --stages filter '
                       'inspect`)')
        return False
    logger.info(f'run: waiting for {shard.world_size} shards to finish {sharded[-1]}')
    wait_for_shards(work, sharded[-1], shard.world_size, run_id)
    return True


def _run_ingest(work, vocabulary, section, shard, categories, logger):
    section = dict(section)
    if 'root' not in section:
        raise ConfigError('ingest: "root" (folder with one sub-folder per category) is required')
    return ingest_images(work, vocabulary, section.pop('root'), shard=shard, logger=logger,
                         categories=categories, **section)


def _run_segment(work, vocabulary, section, shard, device, categories, logger):
    from .segment import segment_images
    from .segmenters import build_segmenter

    specs = section.get('segmenters') or ['grabcut']
    segmenters = [build_segmenter(spec, device) for spec in specs]
    return segment_images(work, vocabulary, segmenters, section.get('batch_size', 8), shard, categories,
                          logger=logger)


def _run_score(work, vocabulary, section, shard, device, categories, logger):
    options = options_from_config(ScoreOptions, section, 'score')
    scorer = ClipScorer(options.model, options.pretrained, device, options.precision)
    return score_masks(work, vocabulary, scorer, options, shard=shard, categories=categories,
                       logger=logger)


def _run_filter(work, vocabulary, section, logger) -> BuildSummary:
    section = dict(section)
    rule = options_from_config(FilterRule, {k: section.pop(k) for k in list(section)
                                            if k in ('min_clip', 'min_area', 'max_area', 'tolerance')},
                               'filter')
    workers = section.pop('workers', None) or os.cpu_count() or 1
    return build_pool(work, vocabulary, rule, workers=workers, logger=logger, **section)


def _run_stats(work, section):
    from xpaste_mm.datasets.category_stats import compute_category_stats, save_category_stats

    if not section.get('ann_file'):
        raise ConfigError('stats: "ann_file" (training annotation JSON) is required')
    return save_category_stats(compute_category_stats(section['ann_file']),
                               work.resolve(section.get('out', 'category_stats.json')))


def _release_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_pool_from_images(image_root: str | os.PathLike, work_dir: str | os.PathLike,
                           vocabulary_file: str | os.PathLike, source: str = 'own',
                           segmenters: Sequence[str | Mapping] = ('grabcut',),
                           clip_model: str = 'ViT-L-14', clip_pretrained: str | None = 'openai',
                           device: str = 'auto', rule: FilterRule = FilterRule(), batch_size: int = 8,
                           workers: int = 1, xpaste_json: str | None = None) -> BuildSummary:
    """One call from a folder of category sub-folders of images to a pool index:
    ingest -> segment -> score -> filter. Returns the filter summary (``.index_path`` is the index).
    Resumable like the individual stages."""
    config = dict(work_dir=str(work_dir), device=device, vocabulary=dict(file=str(vocabulary_file)),
                  ingest=dict(root=str(image_root), source=source),
                  segment=dict(segmenters=list(segmenters), batch_size=batch_size),
                  score=dict(model=str(clip_model), pretrained=clip_pretrained, batch_size=batch_size * 4),
                  filter=dict(min_clip=rule.min_clip, min_area=rule.min_area, max_area=rule.max_area,
                              tolerance=rule.tolerance, workers=workers, xpaste_json=xpaste_json),
                  inspect=None)
    return run_pipeline(config, shard=Shard(), device=device)['filter']
