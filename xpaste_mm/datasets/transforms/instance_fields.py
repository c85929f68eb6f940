"""Reading and writing the instance fields of an mmdet results dict for the paste transforms."""
from __future__ import annotations

import numpy as np
from mmdet.structures.bbox import BaseBoxes, HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks


def num_instances(results: dict) -> int:
    """Number of ground-truth instances (rows of ``gt_bboxes``; 0 without the key)."""
    boxes = results.get('gt_bboxes')
    return 0 if boxes is None else len(boxes)


def read_instances(results: dict, height: int, width: int) -> tuple[np.ndarray, ...]:
    """``(masks uint8 (N, H, W) copy, boxes (N, 4), labels, ignore_flags, is_pasted)`` of ``results``."""
    count = num_instances(results)
    gt_masks = results.get('gt_masks')
    if gt_masks is None:
        if count:
            raise ValueError('pasting needs instance masks: load them with LoadAnnotations(with_mask=True)')
        masks = np.zeros((0, height, width), dtype=np.uint8)
    elif isinstance(gt_masks, (BitmapMasks, PolygonMasks)):
        if (gt_masks.height, gt_masks.width) != (height, width) or len(gt_masks) != count:
            raise ValueError(f'gt_masks ({len(gt_masks)} masks of {gt_masks.height}x{gt_masks.width}) do not '
                             f'match the {count} boxes / the {height}x{width} image')
        raw = gt_masks.masks if isinstance(gt_masks, BitmapMasks) else gt_masks.to_ndarray()
        masks = (np.asarray(raw).reshape(count, height, width) != 0).view(np.uint8)
    else:
        raise TypeError(f'gt_masks must be BitmapMasks or PolygonMasks, got {type(gt_masks).__name__}')
    boxes = results.get('gt_bboxes')
    boxes = np.zeros((0, 4)) if boxes is None else (
        boxes.numpy() if isinstance(boxes, BaseBoxes) else np.asarray(boxes)).reshape(count, 4)
    labels = results.get('gt_bboxes_labels', np.zeros(count, dtype=np.int64))
    ignore = results.get('gt_ignore_flags', np.zeros(count, dtype=bool))
    is_pasted = results.get('gt_is_pasted', np.zeros(count, dtype=bool))
    if not len(labels) == len(ignore) == len(is_pasted) == count:
        raise ValueError(f'instance fields disagree: {count} boxes, {len(labels)} labels, {len(ignore)} '
                         f'ignore flags, {len(is_pasted)} gt_is_pasted flags')
    return masks, boxes, labels, ignore, is_pasted


def bitmap_masks(masks: np.ndarray) -> BitmapMasks:
    """``BitmapMasks`` holding the ``(N, H, W)`` uint8 array itself (its constructor copies it)."""
    wrapped = BitmapMasks([], masks.shape[1], masks.shape[2])
    wrapped.masks = masks
    return wrapped


def write_instances(results: dict, img: np.ndarray, out: dict[str, np.ndarray]) -> None:
    """Store an :meth:`InstanceLayers.finalize` output (and the new image) in ``results``, keeping the
    box type of the input (``HorizontalBoxes`` when it had none)."""
    height, width = img.shape[:2]
    old_boxes = results.get('gt_bboxes')
    if isinstance(old_boxes, np.ndarray):
        boxes = out['boxes']
    else:
        boxes = (type(old_boxes) if isinstance(old_boxes, BaseBoxes) else HorizontalBoxes)(out['boxes'])
    results['img'] = img
    results['img_shape'] = (height, width)
    results['gt_bboxes'] = boxes
    results['gt_bboxes_labels'] = out['labels']
    results['gt_masks'] = bitmap_masks(out['masks'])
    results['gt_ignore_flags'] = out['ignore_flags']
    results['gt_is_pasted'] = out['is_pasted']
