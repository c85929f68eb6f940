"""Boundary IoU (Cheng et al., CVPR 2021) between COCO RLE masks, computed on mask crops.

Definition (as boundary-iou-api's ``mask_to_boundary``): the boundary of a mask is the mask minus its
erosion by a square of radius ``d = max(1, round(ratio * image diagonal))`` pixels, where pixels
outside the image count as background (so a mask cut by the image border has a boundary there).
Boundary IoU = |Bd & Bg| / |Bd | Bg|. Boundary AP matches detections with
``min(mask IoU, boundary IoU)``, as the reference's LVIS evaluation does.

The erosion of a mask only looks at pixels within ``d`` of each pixel and a mask is background
outside its bounding box, so boundaries are computed on the box crop (with background around it):
the same pixels as on the full image, at a fraction of the cost.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import pycocotools.mask as mask_utils

#: Dilation ratio of Boundary AP (fraction of the image diagonal).
DILATION_RATIO = 0.02


def boundary_width(height: int, width: int, ratio: float = DILATION_RATIO) -> int:
    """Erosion radius ``d`` in pixels for an image of ``height`` x ``width``: round-half-even, >= 1."""
    return max(1, int(round(ratio * math.sqrt(height ** 2 + width ** 2))))


@dataclass
class Boundary:
    """Boundary pixels of one mask: ``pixels[r, c]`` is image pixel ``(y0 + r, x0 + c)``."""

    x0: int
    y0: int
    pixels: np.ndarray  # (h, w) bool
    count: int

    @classmethod
    def empty(cls) -> Boundary:
        return cls(0, 0, np.zeros((0, 0), bool), 0)


def rle_counts(counts: bytes) -> np.ndarray:
    """Run lengths (int64) of a compressed COCO RLE string, decoded as pycocotools' ``rleFrString``.

    Each value is 5-bit groups, low first, in chars ``48 + group`` (bit 0x20: more groups follow;
    bit 0x10 of the last group: negative); from the fourth value on, values are deltas to the value
    two places earlier.
    """
    chars = np.frombuffer(counts, np.uint8).astype(np.int64) - 48
    last = np.flatnonzero((chars & 0x20) == 0)
    first = np.r_[0, last[:-1] + 1]
    group = np.arange(len(chars)) - np.repeat(first, last - first + 1)
    values = np.add.reduceat((chars & 0x1F) << (5 * group), first) if len(chars) else np.zeros(0, np.int64)
    negative = (chars[last] & 0x10) != 0
    values[negative] |= -1 << (5 * (group[last][negative] + 1))
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # index >= 3 adds the value two places earlier
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def decode_crop(rle: dict, x: int, y: int, w: int, h: int) -> np.ndarray:
    """``decode(rle)[y:y + h, x:x + w]`` (uint8) without decoding the whole image."""
    height = int(rle['size'][0])
    counts = rle['counts']
    runs = rle_counts(counts.encode() if isinstance(counts, str) else counts)
    ends = np.cumsum(runs)
    low, high = x * height, (x + w) * height  # the crop's columns, as column-major pixel indices
    clipped = np.clip(ends, low, high)
    lengths = np.diff(clipped, prepend=low)
    values = (np.arange(len(runs)) % 2).astype(np.uint8)  # runs alternate background, foreground
    columns = np.repeat(values, lengths).reshape(w, height)
    return np.ascontiguousarray(columns.T[y:y + h])


@functools.lru_cache(maxsize=64)
def _square(radius: int) -> np.ndarray:
    return np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)


def mask_boundary(rle: dict, radius: int) -> Boundary:
    """Boundary of one compressed RLE mask (``{'size': [h, w], 'counts': ...}``) for erosion ``radius``."""
    x, y, w, h = (int(v) for v in mask_utils.toBbox(rle))
    if w == 0 or h == 0:
        return Boundary.empty()
    crop = decode_crop(rle, x, y, w, h)
    eroded = cv2.erode(crop, _square(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    pixels = crop > eroded
    return Boundary(x, y, pixels, int(np.count_nonzero(pixels)))


def boundary_iou(a: Boundary, b: Boundary) -> float:
    """IoU of two boundaries (0 when both are empty), as pycocotools' RLE IoU would give it."""
    x0, y0 = max(a.x0, b.x0), max(a.y0, b.y0)
    x1 = min(a.x0 + a.pixels.shape[1], b.x0 + b.pixels.shape[1])
    y1 = min(a.y0 + a.pixels.shape[0], b.y0 + b.pixels.shape[0])
    inter = 0
    if x1 > x0 and y1 > y0:
        inter = int(np.count_nonzero(a.pixels[y0 - a.y0:y1 - a.y0, x0 - a.x0:x1 - a.x0]
                                     & b.pixels[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0]))
    union = a.count + b.count - inter
    return inter / union if union > 0 else 0.0


def boundary_ap_ious(dt_rles: list[dict], gt_rles: list[dict], ratio: float = DILATION_RATIO) -> np.ndarray:
    """(D, G) ``min(mask IoU, boundary IoU)`` of detections vs ground truth of one image (no crowd).

    Boundaries are only computed for pairs whose mask IoU is positive (otherwise the minimum is 0).
    """
    ious = np.asarray(mask_utils.iou(dt_rles, gt_rles, [0] * len(gt_rles)), dtype=np.float64)
    if ious.size == 0:
        return ious.reshape(len(dt_rles), len(gt_rles))
    height, width = gt_rles[0]['size']
    radius = boundary_width(height, width, ratio)
    gt_cache: dict[int, Boundary] = {}
    dt_cache: dict[int, Boundary] = {}
    for d, g in zip(*np.nonzero(ious > 0)):
        if g not in gt_cache:
            gt_cache[g] = mask_boundary(gt_rles[g], radius)
        if d not in dt_cache:
            dt_cache[d] = mask_boundary(dt_rles[d], radius)
        ious[d, g] = min(ious[d, g], boundary_iou(dt_cache[d], gt_cache[g]))
    return ious
