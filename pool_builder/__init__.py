"""pool_builder: build an X-Paste instance pool (generate -> segment -> score -> filter -> index).

Stages (each resumable, sharded by category, usable alone or through :func:`run_pipeline`):
``generate`` (diffusers), ``ingest`` (own/retrieved images), ``segment`` (segmenter registry),
``score`` (open_clip), ``filter`` (X-Paste's rule, RGBA crops, pool index), ``stats``, ``inspect``.

Public names are imported lazily: ``import pool_builder`` is cheap and each stage loads its own
heavy dependencies (torch, diffusers, transformers, open_clip) when it is used.
"""
from importlib import import_module

_EXPORTS = {
    'Category': 'vocabulary', 'Vocabulary': 'vocabulary', 'load_vocabulary': 'vocabulary',
    'safe_folder_name': 'vocabulary',
    'PromptOptions': 'prompts', 'build_prompts': 'prompts', 'score_text': 'prompts',
    'WorkDir': 'layout', 'open_vocabulary': 'workspace',
    'Shard': 'sharding', 'resolve_shard': 'sharding', 'resolve_device': 'sharding',
    'GenerateOptions': 'generate', 'generate_images': 'generate',
    'load_text_to_image_pipeline': 'generate', 'image_seed': 'generate',
    'ingest_images': 'ingest',
    'SEGMENTERS': 'segmenters', 'Segmenter': 'segmenters', 'build_segmenter': 'segmenters',
    'segment_images': 'segment',
    'ClipScorer': 'scoring', 'ScoreOptions': 'scoring', 'score_masks': 'scoring',
    'composite_on_white': 'scoring',
    'FilterRule': 'selection', 'select_category': 'selection',
    'rgba_crop': 'crop', 'largest_component_filled': 'crop',
    'build_pool': 'build', 'BuildSummary': 'build',
    'inspect_pool': 'report',
    'run_pipeline': 'pipeline', 'load_run_config': 'pipeline', 'build_pool_from_images': 'pipeline',
    'TinyModels': 'tiny_models', 'build_tiny_models': 'tiny_models',
    'build_tiny_stable_diffusion': 'tiny_models', 'build_tiny_clipseg': 'tiny_models',
    'build_tiny_open_clip': 'tiny_models', 'build_tiny_birefnet': 'tiny_models',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(import_module(f'.{_EXPORTS[name]}', __name__), name)
    globals()[name] = value
    return value
