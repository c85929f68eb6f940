"""Detection post-processing of the CenterNet2 RoI head: class-wise NMS with top-k, and mask pasting.

Both give the results of mmdet's ``multiclass_nms`` / ``FCNMaskHead.predict_by_feat`` (and of
detectron2's ``fast_rcnn_inference`` / ``paste_masks_in_image``) with less work:

- :func:`class_wise_nms` runs NMS only on the highest-scoring candidates. Whether a candidate survives
  class-wise NMS depends only on the higher-scoring candidates of its class, so NMS restricted to the
  candidates scoring at least the ``m``-th best score decides them exactly; when at least ``max_num`` of
  them survive, they are the answer, otherwise ``m`` doubles. One NMS call covers every class: boxes are
  shifted apart per class (the coordinate-offset trick) in float64, where the shift is exact.
- :func:`paste_masks` samples each mask only inside its box (as detectron2 does on CPU) and writes the
  window by slicing, with the per-box integer bounds computed for all boxes at once.

Boxes are x1y1x2y2 pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import nms as tv_nms

# Above this many candidates one offset NMS call (quadratic) is slower than one call per class.
_MAX_JOINT_NMS = 16384


def class_wise_nms(boxes: Tensor, scores: Tensor, score_thr: float, iou_thr: float,
                   max_num: int = -1) -> tuple[Tensor, Tensor]:
    """Per-class NMS of class-agnostic boxes; the semantics of mmdet's ``multiclass_nms`` with
    ``nms=dict(type='nms', iou_threshold=iou_thr)``.

    Args:
        boxes: (n, 4) boxes shared by every class.
        scores: (n, C + 1) scores; the last column (background) is ignored.
        score_thr: candidates need a score strictly above it.
        iou_thr: a candidate is suppressed by a higher-scoring box of its class with IoU above it.
        max_num: keep at most this many detections (``<= 0``: all).

    Returns:
        ``dets`` (k, 5) = box and score, sorted by descending score, and ``labels`` (k,).
    """
    num_classes = scores.shape[1] - 1
    flat = scores[:, :num_classes].reshape(-1)
    cand = torch.nonzero(flat > score_thr).squeeze(1)
    if len(cand) == 0:
        return boxes.new_zeros(0, 5), cand.new_zeros(0)
    cand_scores = flat[cand]
    limit = max(4 * max_num, 1024) if max_num > 0 else len(cand)
    while True:
        if limit < len(cand):
            kth = cand_scores.topk(limit, sorted=False).values.min()
            subset = torch.nonzero(cand_scores >= kth).squeeze(1)
        else:
            subset = torch.arange(len(cand), device=cand.device)
        keep = _nms_candidates(boxes, cand[subset] // num_classes, cand[subset] % num_classes,
                               cand_scores[subset], iou_thr)
        if len(subset) == len(cand) or (max_num > 0 and len(keep) >= max_num):
            break
        limit *= 2
    if max_num > 0:
        keep = keep[:max_num]
    picked = cand[subset[keep]]
    dets = torch.cat([boxes[picked // num_classes], flat[picked, None]], dim=1)
    return dets, picked % num_classes


def _nms_candidates(boxes: Tensor, box_inds: Tensor, labels: Tensor, scores: Tensor,
                    iou_thr: float) -> Tensor:
    """Indices into the candidates surviving per-class NMS, by descending score."""
    cand_boxes = boxes[box_inds]
    if len(box_inds) <= _MAX_JOINT_NMS:
        # float64: (coordinate - min) + label * (span + 1) is exact, so every IoU is the per-class one.
        shifted = cand_boxes.double()
        low = shifted.min()
        shifted = shifted - low + (labels.double() * (shifted.max() - low + 1))[:, None]
        return tv_nms(shifted, scores.double(), iou_thr)
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels[order]).tolist()
    kept = []
    for group in torch.split(order, counts):
        if len(group):
            kept.append(group[tv_nms(cand_boxes[group], scores[group], iou_thr)])
    kept = torch.cat(kept)
    return kept[torch.argsort(scores[kept], descending=True, stable=True)]


def paste_masks(mask_probs: Tensor, boxes: Tensor, img_h: int, img_w: int, threshold: float) -> Tensor:
    """Paste (N, h, w) mask probabilities into an (img_h, img_w) image each, inside its box.

    Pixel centres ``(j + 0.5, i + 0.5)`` are mapped into the box and sampled bilinearly
    (``grid_sample``, ``align_corners=False``, zeros outside), as detectron2's and mmdet's pasting do;
    only the pixels of the box (plus one pixel) are computed. Returns ``bool`` masks ``>= threshold``,
    or ``uint8`` probabilities x 255 when ``threshold < 0``.
    """
    num = len(mask_probs)
    dtype = torch.bool if threshold >= 0 else torch.uint8
    out = torch.zeros(num, img_h, img_w, dtype=dtype, device=mask_probs.device)
    if num == 0:
        return out
    boxes = boxes.float()
    low = (boxes[:, :2].floor() - 1).clamp(min=0).int()
    high_x = (boxes[:, 2].ceil() + 1).clamp(max=img_w).int()
    high_y = (boxes[:, 3].ceil() + 1).clamp(max=img_h).int()
    bounds = torch.stack([low[:, 0], low[:, 1], high_x, high_y], dim=1).tolist()
    # float32 values as Python floats: arithmetic with them is float32 arithmetic, as with tensors.
    origins = boxes[:, :2].tolist()
    sizes = (boxes[:, 2:] - boxes[:, :2]).tolist()
    probs = mask_probs[:, None].float()
    for i, (x0, y0, x1, y1) in enumerate(bounds):
        if x1 <= x0 or y1 <= y0:
            continue
        img_x = _grid_coords(x0, x1, origins[i][0], sizes[i][0], probs.device)
        img_y = _grid_coords(y0, y1, origins[i][1], sizes[i][1], probs.device)
        grid = torch.empty(1, y1 - y0, x1 - x0, 2, device=probs.device)
        grid[0, :, :, 0] = img_x
        grid[0, :, :, 1] = img_y[:, None]
        pasted = F.grid_sample(probs[i:i + 1], grid, align_corners=False)[0, 0]
        out[i, y0:y1, x0:x1] = pasted >= threshold if threshold >= 0 else (pasted * 255).to(torch.uint8)
    return out


def _grid_coords(start: int, stop: int, origin: float, size: float, device: torch.device) -> Tensor:
    """Pixel centres ``start + 0.5 .. stop - 0.5`` in the box's [-1, 1] frame (float32); a zero-size
    box maps to 0 where the division gives +-inf (as mmdet's ``_do_paste_mask``)."""
    coords = (torch.arange(start, stop, device=device, dtype=torch.float32) + 0.5 - origin) / size * 2 - 1
    if size == 0:
        coords = torch.where(coords.isinf(), torch.zeros_like(coords), coords)
    return coords
