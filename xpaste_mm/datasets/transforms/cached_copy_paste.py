"""``CachedCopyPaste``: classic Simple Copy-Paste with sources from a cache of recent images."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from .instance_fields import num_instances, read_instances, write_instances
from .instance_layers import InstanceLayers


@dataclass
class _CachedSource:
    """A remembered image and its copyable objects (mask windows at their image positions)."""

    img: np.ndarray
    origins: list[tuple[int, int]]
    windows: list[np.ndarray]
    boxes: np.ndarray
    labels: np.ndarray
    ignore_flags: np.ndarray


@TRANSFORMS.register_module()
class CachedCopyPaste(BaseTransform):
    """Classic copy-paste (Ghiasi et al. 2021; X-Paste's ``self_copy``) without a dataset wrapper.

    The source is a random image among the last ``max_cached_images`` this worker has seen (like
    mmdet's ``CachedMosaic``), instead of mmdet's ``CopyPaste`` that needs ``MultiImageMixDataset``.
    As in X-Paste, 0..N source objects are chosen (``n`` uniform in ``[0, min(N + 1,
    max_num_pasted))``), pasted at their own pixel positions with hard blending, the destination is
    zero-padded at the bottom/right when the chosen objects reach beyond it, and covered instances
    follow the occlusion rule (``bbox_occluded_thr``/``mask_occluded_thr``).

    X-Paste's ``both`` mode is ``XPasteCopyPaste`` followed by this transform. Only original dataset
    objects are copied (the cache ignores instances with ``gt_is_pasted``, matching X-Paste whose
    copy-paste sources never carry pool instances); copied objects get ``gt_is_pasted = False``
    because they are real annotations, and flags of the destination are kept aligned. One known
    difference: images are cached after ``XPasteCopyPaste`` ran on them, so a cached object that a pool
    instance covered is copied with the covered part missing (or not at all when it was dropped),
    where X-Paste draws a fresh, un-pasted source image.

    Required keys: ``img`` (BGR uint8 ``(H, W, 3)``); optional ``gt_bboxes`` (x1y1x2y2 pixels),
    ``gt_bboxes_labels``, ``gt_masks`` (``BitmapMasks`` or ``PolygonMasks``, required when there are
    boxes), ``gt_ignore_flags``, ``gt_is_pasted``.

    Modified keys (when something is copied): ``img`` (zero-padded at the bottom/right when needed),
    ``img_shape``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_masks`` (``BitmapMasks``, padded like the
    image, covered pixels removed), ``gt_ignore_flags``.

    Added keys: ``gt_is_pasted`` (bool per instance; ``False`` for copied objects, the destination's
    flags kept) whenever it is missing, also when nothing is copied.

    Args:
        max_cached_images: size of the per-worker cache of source images.
        random_pop: evict a random cached image when full (else the oldest).
        max_num_pasted: upper bound (exclusive) of the number of copied objects.
        bbox_occluded_thr: pixels an occluded instance's box may move and still be kept.
        mask_occluded_thr: an occluded instance with more mask pixels than this is kept.
        prob: probability of copy-pasting into an image (every image is still cached).
    """

    def __init__(self, max_cached_images: int = 20, random_pop: bool = True, max_num_pasted: int = 100,
                 bbox_occluded_thr: float = 10, mask_occluded_thr: int = 300, prob: float = 1.0) -> None:
        if max_cached_images < 1:
            raise ValueError(f'max_cached_images must be >= 1, got {max_cached_images}')
        self.max_cached_images = int(max_cached_images)
        self.random_pop = random_pop
        self.max_num_pasted = int(max_num_pasted)
        self.bbox_occluded_thr = bbox_occluded_thr
        self.mask_occluded_thr = mask_occluded_thr
        self.prob = float(prob)
        self._cache: list[_CachedSource] = []

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f'CachedCopyPaste expects a BGR uint8 (H, W, 3) image, got {img.dtype} '
                             f'{img.shape}')
        if 'gt_is_pasted' not in results:
            results['gt_is_pasted'] = np.zeros(num_instances(results), dtype=bool)
        rng = np.random.default_rng(np.random.randint(0, 2**31, size=4))
        source = self._cache[int(rng.integers(len(self._cache)))] if self._cache else None
        self._remember(results, rng)
        if source is None or rng.random() >= self.prob or not len(source.windows):
            return results
        count = int(rng.integers(0, min(len(source.windows) + 1, self.max_num_pasted)))
        if count == 0:
            return results
        chosen = np.sort(rng.choice(len(source.windows), size=count, replace=False))
        return self._paste(results, source, chosen)

    def _remember(self, results: dict, rng: np.random.Generator) -> None:
        """Cache a copy of the image and its original (not pool-pasted) objects as tight windows."""
        img = np.ascontiguousarray(results['img'])
        height, width = img.shape[:2]
        masks, boxes, labels, ignore, is_pasted = read_instances(results, height, width)
        origins, windows, keep = [], [], []
        for i in np.flatnonzero(~np.asarray(is_pasted, dtype=bool)):
            x, y, w, h = cv2.boundingRect(masks[i])
            if w and h:
                origins.append((x, y))
                windows.append(masks[i, y:y + h, x:x + w].copy())
                keep.append(i)
        self._cache.append(_CachedSource(img.copy(), origins, windows, np.asarray(boxes)[keep].copy(),
                                         np.asarray(labels)[keep].copy(), np.asarray(ignore)[keep].copy()))
        if len(self._cache) > self.max_cached_images:
            self._cache.pop(int(rng.integers(len(self._cache))) if self.random_pop else 0)

    def _paste(self, results: dict, source: _CachedSource, chosen: np.ndarray) -> dict:
        dst = results['img']
        height, width = dst.shape[:2]
        src_h, src_w = source.img.shape[:2]
        # X-Paste pads to the extent of the chosen objects' masks and boxes
        right = max(max(source.origins[i][0] + source.windows[i].shape[1],
                        min(math.ceil(source.boxes[i, 2]), src_w)) for i in chosen)
        bottom = max(max(source.origins[i][1] + source.windows[i].shape[0],
                         min(math.ceil(source.boxes[i, 3]), src_h)) for i in chosen)
        new_h, new_w = max(height, bottom), max(width, right)
        masks, boxes, labels, ignore, is_pasted = read_instances(results, height, width)
        img = np.zeros((new_h, new_w, 3), dtype=np.uint8)
        img[:height, :width] = dst
        if (new_h, new_w) != (height, width):
            masks = np.pad(masks, ((0, 0), (0, new_h - height), (0, new_w - width)))
        layers = InstanceLayers(masks, boxes, labels, ignore, is_pasted, self.bbox_occluded_thr,
                                self.mask_occluded_thr)
        ux0 = min(source.origins[i][0] for i in chosen)
        uy0 = min(source.origins[i][1] for i in chosen)
        ux1 = max(source.origins[i][0] + source.windows[i].shape[1] for i in chosen)
        uy1 = max(source.origins[i][1] + source.windows[i].shape[0] for i in chosen)
        union = np.zeros((uy1 - uy0, ux1 - ux0), dtype=np.uint8)
        for i in chosen:
            (ox, oy), window = source.origins[i], source.windows[i]
            union[oy - uy0:oy - uy0 + window.shape[0], ox - ux0:ox - ux0 + window.shape[1]] |= window
        layers.occlude(ux0, uy0, union)
        for i in chosen:
            (ox, oy), window = source.origins[i], source.windows[i]
            region = (slice(oy, oy + window.shape[0]), slice(ox, ox + window.shape[1]))
            np.copyto(img[region], source.img[region], where=window.view(bool)[..., None])
            layers.append(ox, oy, window.copy(), int(source.labels[i]), is_pasted=False,
                          ignore=bool(source.ignore_flags[i]), box=source.boxes[i])
        write_instances(results, img, layers.finalize())
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_cached_images={self.max_cached_images}, '
                f'random_pop={self.random_pop}, max_num_pasted={self.max_num_pasted}, '
                f'bbox_occluded_thr={self.bbox_occluded_thr}, mask_occluded_thr={self.mask_occluded_thr}, '
                f'prob={self.prob})')
