"""Running stages from one config: the one way to run the pool builder (``xpaste-pool run``; the
stage commands build the same config from their flags), and the one-call "images -> pool" path.

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

Every key and default is defined once, in ``options.py`` (which also states the path rule). A section
set to None is skipped; ``generate``, ``ingest`` and ``stats`` run only when given. Under a
multi-process launch, generate/ingest/segment/score are sharded by category; rank 0 then waits for
every shard's marker and runs the rest. A run takes the locks of all its (stage, shard) pairs before
it starts, so a second run of the same shard fails at once instead of midway.
"""
from __future__ import annotations

import copy
import gc
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, fields
from pathlib import Path

from . import locking
from .errors import ConfigError
from .layout import WorkDir
from .options import (
    DEFAULT_ON,
    DEVICE_STAGES,
    SECTION_OPTIONS,
    SHARDED_STAGES,
    STAGE_ORDER,
    WORK_DIR_STAGES,
    FilterRule,
    ScoreOptions,
    SegmentOptions,
    VocabularyOptions,
    options_from_config,
)
from .sharding import Shard, resolve_device, resolve_run_id, resolve_shard, stage_shard, wait_for_shards
from .workspace import check_vocabulary_source

#: ``generate``, ``ingest`` and ``stats`` run only when given; ``{}`` runs a section with its defaults.
DEFAULT_RUN_CONFIG: dict = dict(work_dir=None, device='auto', **{
    section: {} if section == 'vocabulary' or section in DEFAULT_ON else None for section in SECTION_OPTIONS})


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
    for section, cls in SECTION_OPTIONS.items():
        value = merged.get(section)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f'{where}: section "{section}" must be a dict or None')
        allowed = {f.name for f in fields(cls)}
        bad = sorted(set(value) - allowed)
        if bad:
            raise ConfigError(f'{where}: unknown key(s) {bad} in "{section}"; allowed: {sorted(allowed)}')
    _check_stages(merged.get('stages'), where)
    return merged


def _check_stages(stages: Sequence[str] | None, where: str) -> None:
    bad = sorted(set(stages or ()) - set(STAGE_ORDER))
    if bad:
        raise ConfigError(f'{where}: unknown stage(s) {bad}; stages are {list(STAGE_ORDER)}')


def run_pipeline(config: Mapping, stages: Sequence[str] | None = None, shard: Shard | None = None,
                 device: str | None = None, log_level: str = 'INFO') -> dict:
    """Run the configured stages in order; returns ``{stage: summary}``.

    ``stages`` (or the config's ``stages``) restricts what runs; sections set to None never run.
    ``work_dir`` is required unless only ``stats``/``inspect`` run (then it defaults to the current
    directory, for their relative ``out``).
    """
    from .logs import get_logger

    config = normalize_run_config(config)
    _check_stages(stages, 'stages')
    shard = shard or resolve_shard()
    wanted = [s for s in STAGE_ORDER if s in (stages or config.get('stages') or STAGE_ORDER)
              and config.get(s) is not None]
    writers = [s for s in wanted if s in WORK_DIR_STAGES]
    if not config['work_dir'] and writers:
        raise ConfigError(f'"work_dir" is required by the stage(s) {writers}')
    work = WorkDir(config['work_dir'] or '.')
    if writers:
        check_vocabulary_source(work, config['vocabulary'].get('file'))
    mine = [s for s in writers if s in SHARDED_STAGES or shard.rank == 0]
    with ExitStack() as locks:
        logger = get_logger(work if config['work_dir'] else None, shard, log_level)
        for stage in mine:
            locks.enter_context(locking.hold_stage(work, stage, stage_shard(stage, shard), logger))
        return _run_stages(config, wanted, work, shard, device, logger)


def _run_stages(config: dict, wanted: list[str], work: WorkDir, shard: Shard, device: str | None,
                logger) -> dict:
    from .stage import build_stage

    vocab_options = options_from_config(VocabularyOptions, config['vocabulary'], 'vocabulary')
    vocabulary = _vocabulary(work, vocab_options.file, any(s in WORK_DIR_STAGES for s in wanted))
    if any(s in DEVICE_STAGES for s in wanted):
        device = resolve_device(device or config['device'], shard)
    device = device or 'cpu'
    logger.info(f'run: stages {wanted} in {work.root} (shard {shard}, device {device})')
    results: dict = {}
    for stage in wanted:
        if stage not in SHARDED_STAGES and shard.world_size > 1:
            if shard.rank != 0 or not _wait_for_other_shards(work, wanted, shard, logger):
                break
        extra = dict(prompt_options=vocab_options) if stage == 'generate' else {}
        results[stage] = build_stage(stage, work, vocabulary, config[stage], shard=shard, device=device,
                                     categories=vocab_options.categories, logger=logger, **extra).run()
        _release_memory()
    return results


def _vocabulary(work: WorkDir, path: str | None, record: bool):
    """The work dir's vocabulary (recorded from ``path`` when ``record``); for stages that only read
    it: the file, else the recorded one, else None."""
    from .vocabulary import load_vocabulary
    from .workspace import open_vocabulary

    if record:
        return open_vocabulary(work, path)
    if path:
        return load_vocabulary(path)
    return load_vocabulary(work.vocabulary_file) if work.vocabulary_file.is_file() else None


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


def _release_memory() -> None:
    gc.collect()
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_pool_from_images(image_root: str | os.PathLike, work_dir: str | os.PathLike,
                           vocabulary_file: str | os.PathLike, source: str = 'own',
                           segmenters: Sequence[str | Mapping] = SegmentOptions.segmenters,
                           clip_model: str = ScoreOptions.model,
                           clip_pretrained: str | None = ScoreOptions.pretrained,
                           device: str = 'auto', rule: FilterRule = FilterRule(),
                           batch_size: int = SegmentOptions.batch_size, workers: int = 1,
                           xpaste_json: str | None = None):
    """One call from a folder of category sub-folders of images to a pool index:
    ingest -> segment -> score -> filter. Returns the filter summary (``.index_path`` is the index).
    Resumable like the individual stages."""
    config = dict(work_dir=str(work_dir), device=device, vocabulary=dict(file=str(vocabulary_file)),
                  ingest=dict(root=str(image_root), source=source),
                  segment=dict(segmenters=list(segmenters), batch_size=batch_size),
                  score=dict(model=str(clip_model), pretrained=clip_pretrained, batch_size=batch_size * 4),
                  filter=dict(**asdict(rule), workers=workers, xpaste_json=xpaste_json),
                  inspect=None)
    return run_pipeline(config, shard=Shard(), device=device)['filter']
