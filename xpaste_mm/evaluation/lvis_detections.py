"""Detections as flat arrays, and lvis-api's rules for which of them are evaluated.

Rules reproduced from lvis-api 0.5.3 (``LVISResults`` / ``LVISEval``), in this order:

1. At most 300 detections per IMAGE: an image with more keeps its highest scores (ties by input
   order). faster-coco-eval instead caps per image AND category, so it must be given capped input.
2. Detections with area <= 0 are dropped (``get_ann_ids`` keeps ``0 < area < inf``). The area of a
   detection is ``w * h`` of its box, also for masks, because mmdet's result files carry a box with
   every mask. faster-coco-eval would keep them.
3. Federated filter: a detection counts only if its category is annotated in the image or listed
   in the image's ``neg_category_ids``.
4. Unmatched detections of a category in ``not_exhaustive_category_ids`` are ignored ("lvis mark").
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .lvis_ground_truth import LVISGroundTruth

#: LVIS's limit of detections per image.
MAX_DETS_PER_IMAGE = 300


@dataclass
class PackedRLE:
    """Compressed COCO RLEs in one bytes buffer: mask ``i`` is ``counts[offsets[i]:offsets[i + 1]]``."""

    counts: bytes
    offsets: np.ndarray  # (N + 1,) int64
    sizes: np.ndarray  # (N, 2) int64, (height, width) pixels

    @classmethod
    def from_rles(cls, rles: Sequence[dict]) -> PackedRLE:
        """Pack RLE dicts (``{'size': [h, w], 'counts': bytes | str}``, as pycocotools encodes)."""
        parts = [r['counts'].encode() if isinstance(r['counts'], str) else r['counts'] for r in rles]
        lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        sizes = np.array([r['size'] for r in rles], dtype=np.int64).reshape(-1, 2)
        return cls(b''.join(parts), offsets, sizes)

    @classmethod
    def concatenate(cls, packs: Sequence[PackedRLE]) -> PackedRLE:
        if not packs:
            return cls(b'', np.zeros(1, np.int64), np.zeros((0, 2), np.int64))
        shifts = np.cumsum([0] + [len(p.counts) for p in packs[:-1]])
        offsets = np.concatenate([packs[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(packs, shifts)])
        return cls(b''.join(p.counts for p in packs), offsets,
                   np.concatenate([p.sizes for p in packs]).reshape(-1, 2))

    def __len__(self) -> int:
        return len(self.sizes)

    def rle(self, index: int) -> dict:
        """One mask as a pycocotools RLE dict (counts as bytes)."""
        start, end = self.offsets[index], self.offsets[index + 1]
        height, width = self.sizes[index]
        return {'size': [int(height), int(width)], 'counts': self.counts[start:end]}

    def rles(self, indices: Sequence[int]) -> list[dict]:
        return [self.rle(i) for i in indices]

    def subset(self, indices: np.ndarray) -> PackedRLE:
        """The masks at ``indices`` (in that order), in a new buffer.

        Masks that lie back to back in this buffer are copied as one slice, so taking ascending
        indices that skip only empty masks copies the buffer in one piece.
        """
        indices = np.asarray(indices, dtype=np.int64)
        starts, ends = self.offsets[indices], self.offsets[indices + 1]
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=offsets[1:])
        breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
        run_starts = starts[np.r_[0, breaks]].tolist() if len(indices) else []
        run_ends = ends[np.r_[breaks - 1, len(indices) - 1]].tolist() if len(indices) else []
        counts = self.counts
        return PackedRLE(b''.join([counts[a:b] for a, b in zip(run_starts, run_ends)]), offsets,
                         self.sizes[indices].reshape(-1, 2))


@dataclass
class LVISDetections:
    """Detections of one task (bbox or segm) in input order; boxes ``[x, y, w, h]`` pixels.

    ``area`` (pixels^2) is only given when it is not the box's ``w * h`` (lvis-api uses the mask area
    for result files whose first record has no box).
    """

    image_index: np.ndarray  # (N,) int32 index into LVISGroundTruth.image_ids
    category_index: np.ndarray  # (N,) int32 index into LVISGroundTruth.category_ids
    scores: np.ndarray  # (N,) float64
    bboxes: np.ndarray  # (N, 4) float64
    masks: PackedRLE | None = None
    area: np.ndarray | None = None  # (N,) float64

    def __post_init__(self):
        n = len(self.scores)
        if not (len(self.image_index) == len(self.category_index) == len(self.bboxes) == n):
            raise ValueError('detection arrays differ in length: image_index, category_index, scores, '
                             f'bboxes = {len(self.image_index)}, {len(self.category_index)}, {n}, '
                             f'{len(self.bboxes)}')
        if self.masks is not None and len(self.masks) != n:
            raise ValueError(f'{len(self.masks)} masks for {n} detections')

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def areas(self) -> np.ndarray:
        """Area lvis-api gives each detection (pixels^2): ``w * h`` of its box unless ``area`` is set."""
        return self.bboxes[:, 2] * self.bboxes[:, 3] if self.area is None else self.area


def top_per_image(image_index: np.ndarray, scores: np.ndarray,
                  max_per_image: int = MAX_DETS_PER_IMAGE) -> np.ndarray:
    """Bool mask of detections kept by a per-image cap: highest scores first, ties by input order."""
    keep = np.ones(len(scores), dtype=bool)
    if len(scores) == 0:
        return keep
    crowded = np.flatnonzero(np.bincount(image_index) > max_per_image)
    if len(crowded) == 0:  # the usual case: result files hold at most 300 per image
        return keep
    rows = np.flatnonzero(np.isin(image_index, crowded))  # only crowded images are sorted
    order = rows[np.lexsort((rows, -scores[rows], image_index[rows]))]
    sorted_images = image_index[order]
    group_start = np.flatnonzero(np.r_[True, sorted_images[1:] != sorted_images[:-1]])
    rank = np.arange(len(order)) - np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
    keep[order[rank >= max_per_image]] = False
    return keep


def evaluated_detections(detections: LVISDetections, gt: LVISGroundTruth,
                         max_per_image: int = MAX_DETS_PER_IMAGE) -> np.ndarray:
    """Input indices (ascending) of the detections lvis-api evaluates (rules 1-3 above)."""
    keep = top_per_image(detections.image_index, detections.scores, max_per_image)
    areas = detections.areas
    keep &= (areas > 0) & (areas < np.inf)
    keep &= gt.federated(detections.image_index, detections.category_index)
    return np.flatnonzero(keep)
