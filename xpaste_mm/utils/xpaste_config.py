"""Add X-Paste to any MMDetection instance-segmentation config, at config-parse time.

A config inherits the detector's config and calls :func:`add_xpaste` on mmengine's ``_base_`` (the
merged base config, readable in the child since mmengine 0.8)::

    _base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
    from xpaste_mm.utils.xpaste_config import add_xpaste  # noqa: E402
    train_dataloader, custom_hooks = add_xpaste(_base_, pool_file='...', stats_file='...')

The result is an ordinary config: ``Config.fromfile``, ``print_config``, the config dumped into the
work dir and every tool see the full pipeline with the inserted transforms.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

PACKERS = ('PackDetInputs', 'PackXPasteInputs')
#: Transforms the paste goes before: the packer, and padding (pastes land in the image, not the pad).
INSERT_BEFORE = ('Pad',) + PACKERS


def add_xpaste(base: Mapping, pool_file: str, stats_file: str, stats_hook: Mapping | None = None,
               **paste_args) -> tuple[dict, list]:
    """``(train_dataloader, custom_hooks)`` of config ``base`` with X-Paste added.

    In every train pipeline that packs its results (the dataset's, or a wrapper's such as
    ``MultiImageMixDataset``; ``ClassBalancedDataset``/``RepeatDataset``/``ConcatDataset`` are
    searched), ``XPasteCopyPaste`` is inserted before ``Pad``/the packer, i.e. after the geometric
    augmentation, and ``PackDetInputs`` becomes ``PackXPasteInputs`` (its arguments kept).
    ``PasteStatsHook`` is appended to the base's ``custom_hooks``.

    Args:
        base: the merged base config (``_base_`` inside a config file, or a ``Config``).
        pool_file: the pool (``pool_index.npz`` from ``xpaste-pool``, or an X-Paste pool ``.json``).
        stats_file: category statistics (``category_stats.json`` from ``xpaste-pool stats``).
        stats_hook: arguments of ``PasteStatsHook`` (e.g. ``dict(stop_on_no_paste=True)``).
        **paste_args: further ``XPasteCopyPaste`` arguments (e.g. ``max_num_pasted=20``).
    """
    dataloader = copy.deepcopy(_get(base, 'train_dataloader'))
    pipelines = _packing_pipelines(dataloader)
    for where, pipeline in pipelines:
        if any(t.get('type') == 'XPasteCopyPaste' for t in pipeline):
            raise ValueError(f'{where} already has XPasteCopyPaste; add_xpaste adds it once')
    if not _loads_masks(dataloader):
        raise ValueError('add_xpaste: the train pipeline loads no instance masks (LoadAnnotations with '
                         'with_mask=True): X-Paste pastes instances with masks into instance-segmentation '
                         'data')
    paste = dict(type='XPasteCopyPaste', pool_file=pool_file, stats_file=stats_file, **paste_args)
    for _, pipeline in pipelines:
        position = next(i for i, t in enumerate(pipeline) if t.get('type') in INSERT_BEFORE)
        pipeline.insert(position, copy.deepcopy(paste))
        for transform in pipeline:
            if transform.get('type') == 'PackDetInputs':
                transform['type'] = 'PackXPasteInputs'
    hooks = [*copy.deepcopy(list(base.get('custom_hooks', None) or [])),
             dict(type='PasteStatsHook', **(stats_hook or {}))]
    return dataloader, hooks


def add_copy_paste(base: Mapping, **copy_args) -> dict:
    """``train_dataloader`` of an X-Paste config ``base`` with classic copy-paste (``CachedCopyPaste``,
    X-Paste's ``both`` mode) right after every ``XPasteCopyPaste``; ``copy_args`` are its arguments."""
    dataloader = copy.deepcopy(_get(base, 'train_dataloader'))
    found = False
    for _, pipeline in _packing_pipelines(dataloader):
        for i in reversed(range(len(pipeline))):
            if pipeline[i].get('type') == 'XPasteCopyPaste':
                pipeline.insert(i + 1, dict(type='CachedCopyPaste', **copy_args))
                found = True
    if not found:
        raise ValueError('add_copy_paste: the train pipeline has no XPasteCopyPaste; call add_xpaste first')
    return dataloader


def _get(base: Mapping, key: str):
    if key not in base:
        raise KeyError(f'the base config has no {key!r}: inherit a complete detector config first')
    return base[key]


def _dataset_pipelines(dataset: Mapping, where: str) -> list[tuple[str, list]]:
    """Every ``pipeline`` list of a dataset config and of the datasets it wraps."""
    found = []
    if isinstance(dataset.get('pipeline'), list):
        found.append((f'{where}.pipeline', dataset['pipeline']))
    if isinstance(dataset.get('dataset'), Mapping):
        found += _dataset_pipelines(dataset['dataset'], f'{where}.dataset')
    for i, inner in enumerate(dataset.get('datasets') or []):
        found += _dataset_pipelines(inner, f'{where}.datasets.{i}')
    return found


def _packing_pipelines(dataloader: Mapping) -> list[tuple[str, list]]:
    found = _dataset_pipelines(dataloader['dataset'], 'train_dataloader.dataset')
    pipelines = [(where, p) for where, p in found if any(t.get('type') in PACKERS for t in p)]
    if not pipelines:
        raise ValueError(f'no train pipeline under train_dataloader.dataset ends with one of {PACKERS}: '
                         'cannot place XPasteCopyPaste')
    return pipelines


def _loads_masks(dataloader: Mapping) -> bool:
    return any(t.get('type') == 'LoadAnnotations' and t.get('with_mask', False)
               for _, p in _dataset_pipelines(dataloader['dataset'], '') for t in p)
