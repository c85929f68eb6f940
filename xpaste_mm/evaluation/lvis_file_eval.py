"""Evaluate LVIS result files (detectron2, Detic, mmdet, Ultralytics, ...) with lvis-api's numbers.

Python API::

    from xpaste_mm.evaluation import evaluate_result_files
    outputs = evaluate_result_files('lvis_v1_val.json', 'results.json', iou_types=('bbox', 'segm'))
    outputs['segm'].results['AP']

Needs numpy, pycocotools, opencv and faster-coco-eval; not mmdet, mmengine or torch.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from .lvis_fast_eval import IOU_TYPES, MASK_IOU_TYPES, default_num_workers, evaluate_lvis, require_core
from .lvis_ground_truth import LVISGroundTruth
from .lvis_result_files import read_result_file
from .lvis_summary import LVISEvalOutput, category_ap


def result_file_per_type(results: str | os.PathLike | Sequence[str | os.PathLike],
                         iou_types: Sequence[str]) -> dict[str, str]:
    """Which file each iou type reads: ``[RESULTS]`` for all, or ``[RESULTS, RESULTS_SEGM]``."""
    files = [str(results)] if isinstance(results, (str, os.PathLike)) else [str(r) for r in results]
    if not 1 <= len(files) <= 2:
        raise ValueError(f'give one result file, or a bbox and a segm result file; got {len(files)}')
    unknown = [t for t in iou_types if t not in IOU_TYPES]
    if unknown or not iou_types:
        raise ValueError(f'iou types must be among {IOU_TYPES}, got {list(iou_types)}')
    return {t: files[-1] if t in MASK_IOU_TYPES else files[0] for t in dict.fromkeys(iou_types)}


def evaluate_result_files(gt: str | os.PathLike | LVISGroundTruth,
                          results: str | os.PathLike | Sequence[str | os.PathLike],
                          iou_types: Sequence[str] = ('bbox',),
                          num_workers: int | None = None,
                          progress: bool = True) -> dict[str, LVISEvalOutput]:
    """LVIS evaluation of result files, per iou type (``'bbox'``, ``'segm'``, ``'boundary'``).

    Args:
        gt: LVIS v1 annotation json (images with ``neg_category_ids`` and
            ``not_exhaustive_category_ids``, categories with ``frequency``), or it loaded.
        results: one result file for every iou type, or ``[bbox_file, segm_file]`` (segm and
            boundary read the second).
        iou_types: any of ``'bbox'``, ``'segm'``, ``'boundary'`` (Boundary AP, dilation ratio 0.02).
        num_workers: forked processes; default: usable cores, at most 8.
        progress: show progress bars.

    Raises:
        ResultFileError: bad records (the message names the file and record).
    """
    per_type = result_file_per_type(results, iou_types)
    require_core()  # before reading what may be gigabytes of results
    if not isinstance(gt, LVISGroundTruth):
        gt = LVISGroundTruth.from_file(gt)
    usable = default_num_workers()
    workers = usable if num_workers is None else max(1, min(num_workers, usable))
    needs_masks: dict[str, bool] = {}
    for iou_type, path in per_type.items():
        needs_masks[path] = needs_masks.get(path, False) or iou_type in MASK_IOU_TYPES
    read = {path: read_result_file(path, gt, with_masks, num_workers=workers, progress=progress)[0]
            for path, with_masks in needs_masks.items()}
    detections = {t: read[path] for t, path in per_type.items()}
    return evaluate_lvis(gt, detections, num_workers=workers, progress=progress, filtered=True)


def per_category_ap(gt: LVISGroundTruth, output: LVISEvalOutput) -> list[dict]:
    """AP (0.50:0.95, all areas) of each category, by ascending id; NaN without ground truth."""
    return [dict(id=int(category_id), name=name, frequency=frequency, AP=category_ap(output.precision, k))
            for k, (category_id, name, frequency) in enumerate(zip(
                gt.category_ids.tolist(), gt.category_names, gt.category_frequencies))]
