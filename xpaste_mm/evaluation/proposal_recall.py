"""Proposal recall (``'proposal_fast'``), as mmdet's ``eval_recalls`` computes it.

mmdet's ``eval_recalls`` stacks per-image IoU matrices of different shapes with ``np.array``, which
numpy >= 1.24 rejects; this is the same computation without that step.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmdet.evaluation.functional import bbox_overlaps, print_recall_summary
from mmdet.evaluation.functional.recall import set_recall_param


def _best_overlaps(ious: np.ndarray) -> np.ndarray:
    """Greedy one-to-one assignment (best remaining pair first): matched IoU per ground-truth box."""
    ious = ious.copy()
    matched = np.zeros(ious.shape[0])
    if ious.size == 0:
        return matched
    for j in range(ious.shape[0]):
        best_box = ious.argmax(axis=1)
        best = ious[np.arange(ious.shape[0]), best_box]
        gt_index = best.argmax()
        matched[j] = best[gt_index]
        ious[gt_index, :] = -1
        ious[:, best_box[gt_index]] = -1
    return matched


def proposal_recalls(gt_boxes: Sequence[np.ndarray], proposals: Sequence[np.ndarray],
                     proposal_nums: Sequence[int], iou_thrs: float | Sequence[float],
                     logger=None) -> np.ndarray:
    """Recall (len(proposal_nums), len(iou_thrs)) of the top proposals of each image.

    Boxes are (n, 4) x1y1x2y2 pixels; proposals may carry a 5th column (score) to sort by.
    """
    if len(gt_boxes) != len(proposals):
        raise ValueError(f'{len(gt_boxes)} ground-truth entries for {len(proposals)} proposal entries')
    nums, thrs = set_recall_param(list(proposal_nums), iou_thrs)
    per_num = [[] for _ in nums]
    for gts, boxes in zip(gt_boxes, proposals):
        if boxes.ndim == 2 and boxes.shape[1] == 5:
            boxes = boxes[np.argsort(boxes[:, 4])[::-1]]
        kept = boxes[:min(len(boxes), nums[-1]), :4]
        ious = bbox_overlaps(gts, kept) if len(gts) else np.zeros((0, len(boxes)), dtype=np.float32)
        for k, num in enumerate(nums):
            per_num[k].append(_best_overlaps(ious[:, :num]))
    overlaps = np.stack([np.concatenate(v) if v else np.zeros(0) for v in per_num]).astype(np.float32)
    total = overlaps.shape[1]
    overlaps = np.fliplr(np.sort(overlaps, axis=1))
    recalls = np.stack([(overlaps >= thr).sum(axis=1) / float(total) for thr in thrs], axis=1)
    print_recall_summary(recalls, nums, thrs, logger=logger)
    return recalls
