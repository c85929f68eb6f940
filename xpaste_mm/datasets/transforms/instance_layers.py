"""Instance masks of one image, updated as objects are pasted on top of it.

Implements the occlusion rule of X-Paste / Simple Copy-Paste: every paste removes its pixels from the
masks of all instances below it, their boxes become tight to the remaining mask, and an instance
survives if no box coordinate moved by more than ``bbox_occluded_thr`` pixels or more than
``mask_occluded_thr`` mask pixels remain.

All work is limited to the pasted region: an instance is a mask *window* (uint8, 0/1) anchored at an
image position. Original instances use full-image windows (one plane of the mask array); pasted ones
keep only their tight box. Boxes are x1y1x2y2 in pixels, half-open (``x2 = last column + 1``, as
mmdet's ``BitmapMasks.get_bboxes``); an empty mask has the box ``[0, 0, 0, 0]``.
"""
from __future__ import annotations

import cv2
import numpy as np


class InstanceLayers:
    """Masks, boxes, labels and flags of an image's instances in paste order (bottom first).

    Args:
        masks: ``(N, H, W)`` uint8 0/1 masks of the existing instances; modified in place.
        boxes: ``(N, 4)`` their current boxes (annotation boxes; made tight at the first occlusion).
        labels: ``(N,)`` labels; ``ignore_flags``/``is_pasted``: ``(N,)`` bool flags carried along.
        bbox_occluded_thr: pixels a box coordinate may move while the instance is kept regardless.
        mask_occluded_thr: an instance with more mask pixels than this is kept regardless.
    """

    def __init__(self, masks: np.ndarray, boxes: np.ndarray, labels: np.ndarray, ignore_flags: np.ndarray,
                 is_pasted: np.ndarray, bbox_occluded_thr: float = 10, mask_occluded_thr: int = 300) -> None:
        count, self.height, self.width = masks.shape
        self.bbox_occluded_thr = bbox_occluded_thr
        self.mask_occluded_thr = mask_occluded_thr
        self._windows = list(masks)
        self._origins = [(0, 0)] * count
        self._labels = [int(v) for v in labels]
        self._ignore = [bool(v) for v in ignore_flags]
        self._pasted = [bool(v) for v in is_pasted]
        self._boxes = np.asarray(boxes, dtype=np.float64).reshape(count, 4).copy()
        self._areas = np.full(count, -1, dtype=np.int64)
        self._alive = np.ones(count, dtype=bool)
        self._tight = False

    def __len__(self) -> int:
        return len(self._windows)

    @property
    def boxes(self) -> np.ndarray:
        """Current boxes of all instances (dropped ones included), ``(N, 4)`` float64."""
        return self._boxes

    @property
    def alive(self) -> np.ndarray:
        return self._alive

    # ------------------------------------------------------------------ occlusion
    def occlude(self, x0: int, y0: int, region: np.ndarray) -> None:
        """Remove ``region`` (uint8 0/1 window at image position ``(x0, y0)``, inside the image) from
        every instance, update their boxes and apply the occlusion rule."""
        height, width = region.shape
        x1, y1 = x0 + width, y0 + height
        before: dict[int, np.ndarray] = {}
        if not self._tight:
            before = {j: self._boxes[j].copy() for j in np.flatnonzero(self._alive)}
            for j in before:
                self._boxes[j] = self._tight_box(j, self._window_box(j))
            self._tight = True
        boxes = self._boxes
        overlapping = np.flatnonzero(self._alive & (boxes[:, 0] < x1) & (boxes[:, 2] > x0)
                                     & (boxes[:, 1] < y1) & (boxes[:, 3] > y0))
        for j in overlapping:
            bx0, by0, bx1, by1 = (int(v) for v in boxes[j])
            ix0, iy0, ix1, iy1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
            ox, oy = self._origins[j]
            window = self._windows[j]
            own = window[iy0 - oy:iy1 - oy, ix0 - ox:ix1 - ox]
            covered = own & region[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
            removed = cv2.countNonZero(covered)
            if removed == 0:
                continue
            area = self.area(j)
            own ^= covered
            self._areas[j] = area - removed
            before.setdefault(j, boxes[j].copy())
            inside = ix0 > bx0 and iy0 > by0 and ix1 < bx1 and iy1 < by1
            if self._areas[j] == 0:
                boxes[j] = 0
            elif not inside:
                boxes[j] = self._tight_box(j, (bx0, by0, bx1, by1))
        if before:
            self._apply_rule(before)

    def _apply_rule(self, before: dict[int, np.ndarray]) -> None:
        for j, old in before.items():
            moved = np.abs(self._boxes[j] - old).max()
            if moved > self.bbox_occluded_thr and self.area(j) <= self.mask_occluded_thr:
                self._alive[j] = False

    def _window_box(self, j: int) -> tuple[int, int, int, int]:
        ox, oy = self._origins[j]
        height, width = self._windows[j].shape
        return ox, oy, ox + width, oy + height

    def _tight_box(self, j: int, search: tuple[int, int, int, int]) -> np.ndarray:
        """Tight box of instance ``j``'s mask, scanning only ``search`` (a box known to hold it)."""
        ox, oy = self._origins[j]
        sx0, sy0, sx1, sy1 = search
        x, y, w, h = cv2.boundingRect(self._windows[j][sy0 - oy:sy1 - oy, sx0 - ox:sx1 - ox])
        if w == 0 or h == 0:
            return np.zeros(4)
        return np.array([sx0 + x, sy0 + y, sx0 + x + w, sy0 + y + h], dtype=np.float64)

    def area(self, j: int) -> int:
        """Mask pixel count of instance ``j`` (counted once, then tracked)."""
        if self._areas[j] < 0:
            self._areas[j] = cv2.countNonZero(self._windows[j])
        return int(self._areas[j])

    # ------------------------------------------------------------------ appending
    def append(self, x0: int, y0: int, window: np.ndarray, label: int, *, is_pasted: bool = True,
               ignore: bool = False, box: np.ndarray | None = None, area: int | None = None) -> None:
        """Add an instance on top: ``window`` (uint8 0/1, owned by the layers from now on) at ``(x0,
        y0)``; ``box`` defaults to the tight box of the window."""
        self._windows.append(window)
        self._origins.append((int(x0), int(y0)))
        self._labels.append(int(label))
        self._ignore.append(bool(ignore))
        self._pasted.append(bool(is_pasted))
        j = len(self._windows) - 1
        self._boxes = np.vstack([self._boxes, np.zeros((1, 4))])
        self._areas = np.append(self._areas, -1 if area is None else int(area))
        self._alive = np.append(self._alive, True)
        self._boxes[j] = (np.asarray(box, dtype=np.float64) if box is not None
                          else self._tight_box(j, self._window_box(j)))

    # ------------------------------------------------------------------ output
    def finalize(self, min_pasted_area: int = 1) -> dict[str, np.ndarray]:
        """Surviving instances as full-image arrays.

        Drops instances removed by the occlusion rule, instances whose mask became empty and pasted
        instances with fewer than ``min_pasted_area`` visible pixels. Returns ``masks`` (uint8
        ``(n, H, W)``), ``boxes`` (float32 ``(n, 4)``), ``labels`` (int64), ``ignore_flags`` and
        ``is_pasted`` (bool).
        """
        keep = [j for j in np.flatnonzero(self._alive)
                if self.area(j) > 0 and (not self._pasted[j] or self.area(j) >= min_pasted_area)]
        masks = np.zeros((len(keep), self.height, self.width), dtype=np.uint8)
        for i, j in enumerate(keep):
            ox, oy = self._origins[j]
            window = self._windows[j]
            masks[i, oy:oy + window.shape[0], ox:ox + window.shape[1]] = window
        return dict(masks=masks,
                    boxes=self._boxes[keep].astype(np.float32).reshape(-1, 4),
                    labels=np.array([self._labels[j] for j in keep], dtype=np.int64),
                    ignore_flags=np.array([self._ignore[j] for j in keep], dtype=bool),
                    is_pasted=np.array([self._pasted[j] for j in keep], dtype=bool))
