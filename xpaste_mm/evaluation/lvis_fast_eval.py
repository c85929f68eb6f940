"""Fast LVIS evaluation: faster-coco-eval's C++ matching and accumulation, category by category.

faster-coco-eval's ``COCOeval_faster`` keeps bookkeeping (IoU slots, C++ evaluation records) for
every image x category pair; on LVIS (1,203 categories) nearly all of them are empty and they
dominate its memory. Here each C++ call sees ONE category and only the images where it has ground
truth or evaluated detections, so bookkeeping grows with the non-empty pairs only. Categories are
split into shards evaluated by forked worker processes (bbox and segm shards share one pool).

The C++ core gets exactly what lvis-api evaluates (see :mod:`.lvis_detections`): detections capped
to 300 per image, zero-area and non-federated ones dropped, the not-exhaustive mark, lvis-api's
parameters, IoUs from pycocotools with detections in stable score order. Precision and recall then
equal lvis-api's up to 1 ulp (lvis-api adds 2.2e-16 to the precision denominator).

``'boundary'`` (Boundary AP) is evaluated like segm with ``min(mask IoU, boundary IoU)`` as the IoU
and boundary-iou-api's area ranges (see :mod:`.boundary_iou` and :func:`area_ranges`).
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace

import numpy as np
import pycocotools.mask as mask_utils
from tqdm import tqdm

from .boundary_iou import boundary_ap_ious
from .fast_json import paused_gc
from .lvis_detections import MAX_DETS_PER_IMAGE, LVISDetections, evaluated_detections
from .lvis_ground_truth import LVISGroundTruth, pair_keys
from .lvis_summary import AREA_RANGES, IOU_THRESHOLDS, RECALL_THRESHOLDS, LVISEvalOutput, summarize

IOU_TYPES = ('bbox', 'segm', 'boundary')
MASK_IOU_TYPES = ('segm', 'boundary')


def faster_coco_eval_core() -> ModuleType | None:
    """faster-coco-eval's C++ module when installed and offering the entry points used here."""
    try:
        import faster_coco_eval.faster_eval_api_cpp as core
    except ImportError:
        return None
    if not (hasattr(core, 'Dataset') and hasattr(core, 'COCOevalEvaluateAccumulate')):
        return None
    return core


def default_num_workers() -> int:
    """CPU cores this process may use, at most 8; 1 where it cannot fork workers (non-Linux, daemon)."""
    if (sys.platform != 'linux' or 'fork' not in multiprocessing.get_all_start_methods()
            or multiprocessing.current_process().daemon):
        return 1
    return max(1, min(8, len(os.sched_getaffinity(0))))


@dataclass
class _Task:
    """One iou type's evaluated detections, grouped by (category, image, input order)."""

    iou_type: str
    detections: LVISDetections
    rows: np.ndarray  # evaluated detection indices
    category_starts: np.ndarray  # (K + 1,): rows of category k are rows[starts[k]:starts[k + 1]]
    lvis_mark: np.ndarray  # (N,) bool: category not exhaustively annotated in the image
    areas: np.ndarray  # (N,) float64 box areas, pixels^2


def _prepare_task(gt: LVISGroundTruth, iou_type: str, detections: LVISDetections,
                  filtered: bool = False) -> _Task:
    if iou_type not in IOU_TYPES:
        raise ValueError(f'iou_type must be one of {IOU_TYPES}, got {iou_type!r}')
    if iou_type in MASK_IOU_TYPES and detections.masks is None:
        raise ValueError(f'{iou_type} evaluation needs detections with masks')
    kept = (np.arange(len(detections.scores)) if filtered
            else evaluated_detections(detections, gt, MAX_DETS_PER_IMAGE))
    order = np.lexsort((kept, detections.image_index[kept], detections.category_index[kept]))
    rows = kept[order]
    starts = np.searchsorted(detections.category_index[rows], np.arange(gt.num_categories + 1))
    keys = pair_keys(detections.image_index, detections.category_index, gt.num_categories)
    return _Task(iou_type, detections, rows, starts, np.isin(keys, gt.not_exhaustive_pairs), detections.areas)


def _pair_ious(task: _Task, gt: LVISGroundTruth, det_rows: np.ndarray, gt_rows: slice,
               gt_rles: list[dict] | None) -> list:
    """IoU matrix (detections x ground truth) as pycocotools computes it for lvis-api."""
    num_gt = gt_rows.stop - gt_rows.start
    if len(det_rows) == 0 or num_gt == 0:
        return []
    crowd = [0] * num_gt
    if task.iou_type == 'bbox':
        ious = mask_utils.iou(task.detections.bboxes[det_rows], gt.ann_bbox[gt_rows], crowd)
    elif task.iou_type == 'segm':
        ious = mask_utils.iou(task.detections.masks.rles(det_rows.tolist()), gt_rles, crowd)
    else:
        ious = boundary_ap_ious(task.detections.masks.rles(det_rows.tolist()), gt_rles)
    return ious.tolist()


def area_ranges(iou_type: str) -> list[list[float]]:
    """Area ranges as the C++ core compares them (``area < low or area > high`` is out of range).

    boundary-iou-api's LVIS evaluation counts ``area >= high`` as out of range (lvis-api:
    ``area > high``); for boundary the upper bounds are lowered to the next smaller double.
    """
    if iou_type != 'boundary':
        return [list(r) for r in AREA_RANGES]
    return [[low, float(np.nextafter(high, -np.inf))] for low, high in AREA_RANGES]


def _evaluate_category(core: ModuleType, gt: LVISGroundTruth, task: _Task, category: int):
    """(precision (T, R, A), recall (T, A)) of one category, or None if it has no ground truth."""
    gt_start, gt_end = int(gt.category_starts[category]), int(gt.category_starts[category + 1])
    if gt_start == gt_end:
        return None
    det_rows = task.rows[task.category_starts[category]:task.category_starts[category + 1]]
    dets = task.detections
    gt_images = gt.ann_image[gt_start:gt_end]
    det_images = dets.image_index[det_rows]
    images = np.union1d(gt_images, det_images)
    gt_lo, gt_hi = np.searchsorted(gt_images, images, 'left'), np.searchsorted(gt_images, images, 'right')
    dt_lo, dt_hi = np.searchsorted(det_images, images, 'left'), np.searchsorted(det_images, images, 'right')
    gt_rles = gt.rles(range(gt_start, gt_end)) if task.iou_type in MASK_IOU_TYPES else None
    gt_ids = gt.ann_ids[gt_start:gt_end].tolist()
    gt_areas = gt.ann_area[gt_start:gt_end].tolist()
    gt_ignore = gt.ann_ignore[gt_start:gt_end].tolist()
    det_scores = dets.scores[det_rows]

    gt_set, det_set = core.Dataset(), core.Dataset()
    ious = []
    for k, image in enumerate(images.tolist()):
        for j in range(gt_lo[k], gt_hi[k]):
            gt_set.append_ref(image, category, {'id': gt_ids[j], 'area': gt_areas[j], 'ignore': gt_ignore[j]})
        local = np.arange(dt_lo[k], dt_hi[k])
        rows = det_rows[local[np.argsort(-det_scores[local], kind='mergesort')]]
        for row, score, area, mark in zip((rows + 1).tolist(), dets.scores[rows].tolist(),
                                          task.areas[rows].tolist(), task.lvis_mark[rows].tolist()):
            det_set.append_ref(image, category, {'id': row, 'score': score, 'area': area, 'lvis_mark': mark})
        pair_rles = gt_rles[gt_lo[k]:gt_hi[k]] if gt_rles is not None else None
        ious.append([_pair_ious(task, gt, rows, slice(gt_start + gt_lo[k], gt_start + gt_hi[k]), pair_rles)])

    params = SimpleNamespace(iouThrs=IOU_THRESHOLDS.tolist(), recThrs=RECALL_THRESHOLDS.tolist(),
                             maxDets=[MAX_DETS_PER_IMAGE], areaRng=area_ranges(task.iou_type),
                             useCats=1, catIds=[category], imgIds=images.tolist())
    out = core.COCOevalEvaluateAccumulate(params, ious, gt_set, det_set, images.tolist(), [category], True)
    return out['precision'][:, :, 0, :, 0], out['recall'][:, 0, :, 0]


def _evaluate_shard(core: ModuleType, gt: LVISGroundTruth, task: _Task, categories: list[int]):
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(categories), len(AREA_RANGES)))
    recall = -np.ones((len(IOU_THRESHOLDS), len(categories), len(AREA_RANGES)))
    with paused_gc():
        for j, category in enumerate(categories):
            result = _evaluate_category(core, gt, task, category)
            if result is not None:
                precision[:, :, j, :], recall[:, j, :] = result
    return precision, recall


def _shards(gt: LVISGroundTruth, task: _Task, num_shards: int) -> list[list[int]]:
    """Categories with ground truth in ``num_shards`` groups of similar work (largest first)."""
    num_gt = np.diff(gt.category_starts)
    work = np.diff(task.category_starts) * (1.0 + num_gt / max(1, len(gt.image_ids))) + num_gt + 20.0
    shards: list[list[int]] = [[] for _ in range(num_shards)]
    load = np.zeros(num_shards)
    for category in np.argsort(-work, kind='stable'):
        if num_gt[category] == 0:
            continue
        target = int(np.argmin(load))
        shards[target].append(int(category))
        load[target] += work[category]
    return [sorted(s) for s in shards if s]


# Set by evaluate_lvis before the worker pool forks; read by the workers.
_FORK_STATE: dict = {}


def _run_forked_shard(index: int):
    state = _FORK_STATE
    task_index, categories = state['shards'][index]
    task = state['tasks'][task_index]
    return (task_index, categories) + _evaluate_shard(state['core'], state['gt'], task, categories)


def require_core():
    """faster-coco-eval's C++ core, or a ``RuntimeError`` naming the install command."""
    core = faster_coco_eval_core()
    if core is None:
        raise RuntimeError('faster-coco-eval (with its C++ core) is not installed: '
                           'pip install faster-coco-eval')
    return core


def evaluate_lvis(gt: LVISGroundTruth, detections: Mapping[str, LVISDetections], num_workers: int = 1,
                  progress: bool = True, filtered: bool = False) -> dict[str, LVISEvalOutput]:
    """Evaluate detections per iou type (``{'bbox': ..., 'segm': ..., 'boundary': ...}``) like lvis-api.

    ``num_workers`` > 1 forks that many processes (Linux); categories are evaluated in shards.
    ``filtered``: the detections are already those lvis-api evaluates (:func:`evaluated_detections`,
    as :func:`~xpaste_mm.evaluation.lvis_result_files.read_result_file` returns them), so the rules
    are not applied again.
    """
    core = require_core()
    tasks = [_prepare_task(gt, iou_type, dets, filtered) for iou_type, dets in detections.items()]
    num_workers = max(1, min(num_workers, default_num_workers()))
    shards = [(t, cats) for t, task in enumerate(tasks)
              for cats in _shards(gt, task, 1 if num_workers == 1 else 4 * num_workers)]
    shape = (len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), gt.num_categories, len(AREA_RANGES))
    precisions = [-np.ones(shape) for _ in tasks]
    recalls = [-np.ones((shape[0], shape[2], shape[3])) for _ in tasks]
    bar = tqdm(total=len(shards), desc='LVIS eval (category shards)', disable=not progress, leave=False)

    def collect(task_index, categories, precision, recall):
        precisions[task_index][:, :, categories, :] = precision
        recalls[task_index][:, categories, :] = recall
        bar.update()

    if num_workers == 1 or len(shards) <= 1:
        for task_index, categories in shards:
            collect(task_index, categories, *_evaluate_shard(core, gt, tasks[task_index], categories))
    else:
        _FORK_STATE.update(core=core, gt=gt, tasks=tasks, shards=shards)
        try:
            with multiprocessing.get_context('fork').Pool(num_workers) as pool:
                for result in pool.imap_unordered(_run_forked_shard, range(len(shards))):
                    collect(*result)
        finally:
            _FORK_STATE.clear()
    bar.close()
    groups = gt.frequency_groups
    return {task.iou_type: LVISEvalOutput(task.iou_type, precision, recall,
                                          summarize(precision, recall, groups, MAX_DETS_PER_IMAGE))
            for task, precision, recall in zip(tasks, precisions, recalls)}
