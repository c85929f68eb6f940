"""Per-image predictions (as ``FastLVISMetric.process`` stores them) to detections and result files.

A prediction is a dict with ``img_id``, ``bboxes`` (n, 4) float32 x1y1x2y2 pixels, ``scores`` (n,),
``labels`` (n,) 0-based in the annotation file's category order (mmdet's ``LVISMetric`` order), and
optionally ``masks`` (a :class:`PackedRLE` or a list of RLE dicts) and ``mask_scores`` (n,).
Box conversion and score handling follow mmdet's ``CocoMetric.results2json`` so that the numbers
lvis-api sees from mmdet's result files are reproduced bit for bit.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmengine.fileio import dump

from .lvis_detections import LVISDetections, PackedRLE
from .lvis_ground_truth import LVISGroundTruth

TASKS = ('bbox', 'segm')


def packed_masks(prediction: dict) -> PackedRLE:
    masks = prediction['masks']
    return masks if isinstance(masks, PackedRLE) else PackedRLE.from_rles(masks)


def _task_scores(prediction: dict, task: str) -> np.ndarray:
    if task == 'segm' and 'mask_scores' in prediction:
        return np.asarray(prediction['mask_scores'])
    return np.asarray(prediction['scores'])


def _check_task(predictions: Sequence[dict], task: str) -> None:
    if task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}')
    if task == 'segm' and any('masks' not in p for p in predictions):
        raise ValueError("metric 'segm' needs predicted masks (pred_instances.masks), but some "
                         'predictions have none')


def xyxy_to_xywh(bboxes: np.ndarray) -> np.ndarray:
    """(n, 4) x1y1x2y2 -> float64 x y w h, computed in float64 like mmdet's ``xyxy2xywh``."""
    boxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def to_detections(predictions: Sequence[dict], gt: LVISGroundTruth, task: str) -> LVISDetections:
    """Flat detections of one task; labels map to categories through the file's category order."""
    _check_task(predictions, task)
    counts = [len(p['scores']) for p in predictions]
    labels = np.concatenate([np.asarray(p['labels'], dtype=np.int64).reshape(-1) for p in predictions]
                            + [np.zeros(0, np.int64)])
    num_labels = len(gt.file_category_ids)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(f'predicted labels must lie in [0, {num_labels}) (the categories of '
                         f'{gt.source}), got range [{labels.min()}, {labels.max()}]')
    label_to_index = np.searchsorted(gt.category_ids, np.asarray(gt.file_category_ids, dtype=np.int64))
    image_ids = np.repeat(np.array([int(p['img_id']) for p in predictions], dtype=np.int64), counts)
    return LVISDetections(
        image_index=gt.image_index(image_ids),
        category_index=label_to_index[labels].astype(np.int32),
        scores=np.concatenate([_task_scores(p, task).astype(np.float64).reshape(-1) for p in predictions]
                              + [np.zeros(0)]),
        bboxes=np.concatenate([xyxy_to_xywh(p['bboxes']) for p in predictions] + [np.zeros((0, 4))]),
        masks=PackedRLE.concatenate([packed_masks(p) for p in predictions]) if task == 'segm' else None)


def to_json_records(predictions: Sequence[dict], file_category_ids: Sequence[int], task: str) -> list[dict]:
    """COCO-style result records, identical to mmdet's ``CocoMetric.results2json`` entries."""
    _check_task(predictions, task)
    records = []
    for prediction in predictions:
        boxes = xyxy_to_xywh(prediction['bboxes']).tolist()
        scores = _task_scores(prediction, task).tolist()
        labels = np.asarray(prediction['labels']).tolist()
        masks = packed_masks(prediction) if task == 'segm' else None
        for i, (box, score, label) in enumerate(zip(boxes, scores, labels)):
            record = dict(image_id=prediction['img_id'], bbox=box, score=float(score),
                          category_id=file_category_ids[label])
            if masks is not None:
                rle = masks.rle(i)
                record['segmentation'] = dict(size=rle['size'], counts=rle['counts'].decode())
            records.append(record)
    return records


def write_result_files(predictions: Sequence[dict], file_category_ids: Sequence[int],
                       outfile_prefix: str) -> dict[str, str]:
    """Write ``<prefix>.bbox.json`` (and ``<prefix>.segm.json`` with masks), as mmdet names them."""
    files = {'bbox': f'{outfile_prefix}.bbox.json'}
    files['proposal'] = files['bbox']
    dump(to_json_records(predictions, file_category_ids, 'bbox'), files['bbox'])
    if predictions and all('masks' in p for p in predictions):
        files['segm'] = f'{outfile_prefix}.segm.json'
        dump(to_json_records(predictions, file_category_ids, 'segm'), files['segm'])
    return files
