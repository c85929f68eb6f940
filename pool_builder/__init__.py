"""pool_builder: build an X-Paste instance pool (generate -> segment -> score -> filter -> index).

Stages are classes in the :data:`~pool_builder.stage.STAGES` registry, one module each, named after
the stage: ``generate`` (diffusers), ``ingest`` (own/retrieved images), ``segment`` (segmenter
registry), ``score`` (open_clip), ``filter`` (X-Paste's rule, RGBA crops, pool index), ``stats``,
``inspect``. Each is resumable, sharded by category where it makes sense, single-writer per shard,
and runs from a config through :func:`run_pipeline` (``xpaste-pool run``). Their options, with every
default, are defined once in ``options.py``. Test and demo fixtures live in ``pool_builder.testing``.

Public names are imported lazily: ``import pool_builder`` imports neither torch nor mmdet, and each
stage loads its own heavy dependencies (torch, diffusers, transformers, open_clip, mmdet) when it runs.
"""
from importlib import import_module

_EXPORTS = {
    'Category': 'vocabulary', 'Vocabulary': 'vocabulary', 'load_vocabulary': 'vocabulary',
    'safe_folder_name': 'vocabulary',
    'PromptOptions': 'options', 'VocabularyOptions': 'options', 'GenerateOptions': 'options',
    'IngestOptions': 'options', 'SegmentOptions': 'options', 'ScoreOptions': 'options',
    'FilterRule': 'options', 'FilterOptions': 'options', 'StatsOptions': 'options',
    'InspectOptions': 'options',
    'build_prompts': 'prompts', 'score_text': 'prompts',
    'WorkDir': 'layout', 'open_vocabulary': 'workspace',
    'Shard': 'sharding', 'resolve_shard': 'sharding', 'resolve_device': 'sharding',
    'STAGES': 'stage', 'Stage': 'stage', 'StageSummary': 'stage', 'build_stage': 'stage',
    'GenerateStage': 'generate', 'generate_images': 'generate',
    'load_text_to_image_pipeline': 'generate', 'image_seed': 'generate',
    'IngestStage': 'ingest', 'ingest_images': 'ingest',
    'SEGMENTERS': 'segmenters', 'Segmenter': 'segmenters', 'build_segmenter': 'segmenters',
    'SegmentStage': 'segment', 'segment_images': 'segment',
    'ClipScorer': 'score', 'ScoreStage': 'score', 'score_masks': 'score', 'composite_on_white': 'score',
    'select_category': 'selection',
    'rgba_crop': 'crop', 'largest_component_filled': 'crop',
    'FilterStage': 'filter', 'build_pool': 'filter', 'BuildSummary': 'filter',
    'InspectStage': 'inspect', 'inspect_pool': 'inspect',
    'StatsStage': 'stats',
    'run_pipeline': 'pipeline', 'load_run_config': 'pipeline', 'build_pool_from_images': 'pipeline',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(import_module(f'.{_EXPORTS[name]}', __name__), name)
    globals()[name] = value
    return value
