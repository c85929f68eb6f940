"""``XPasteCopyPaste``: paste instances from an external pool (X-Paste, ICML 2023) in mmdet pipelines."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine.logging import print_log

from ...categories import (
    FREQUENCY_GROUPS,
    check_sorted_ids,
    load_frequencies,
    load_size_prior,
    missing_from_stats,
    read_ann_categories,
    sorted_ids,
)
from ..instance_pool import SAMPLE_MODES, InstancePool
from .blending import BLEND_MODES, blend_instance
from .instance_aug import jitter_colors, rotate_expanded, target_sizes
from .instance_fields import num_instances, read_instances, write_instances
from .instance_layers import InstanceLayers
from .paste_stats import PASTE_STATS_KEY, label_frequency_groups, paste_record


@dataclass
class PreparedInstance:
    """A pool instance ready to paste: top-left ``(x0, y0)`` in the image (may be negative or reach
    past the border), BGR ``(h, w, 3)`` and alpha ``(h, w)`` uint8, 0/1 uint8 ``mask``, dataset
    ``label`` and blend mode."""

    x0: int
    y0: int
    bgr: np.ndarray
    alpha: np.ndarray
    mask: np.ndarray
    label: int
    blend: str


@TRANSFORMS.register_module()
class XPasteCopyPaste(BaseTransform):
    """Paste 0..``max_num_pasted - 1`` pool instances into each training image, as X-Paste does.

    Place it after ``RandomResize``/``RandomCrop``/``RandomFlip`` (sizes are relative to the final,
    un-padded image) and before ``PackXPasteInputs``. Instances are pasted one at a time: each is
    drawn from the pool (``sample_mode``), scaled by its category's size prior, flipped (and
    optionally rotated / colour-jittered), placed with its box centre uniform in the image, blended
    (a mode drawn from ``blend_modes``), and every instance below loses the covered pixels and is
    dropped when hidden (``bbox_occluded_thr``/``mask_occluded_thr``). Work is limited to each
    pasted box.

    Required keys: ``img`` (BGR uint8 ``(H, W, 3)``); optional ``gt_bboxes`` (x1y1x2y2 pixels),
    ``gt_bboxes_labels``, ``gt_masks`` (``BitmapMasks`` or ``PolygonMasks``, required when there are
    boxes), ``gt_ignore_flags``, ``gt_is_pasted``.

    Modified keys: ``img``, ``img_shape`` (same size), ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_masks`` (``BitmapMasks`` whenever something was pasted), ``gt_ignore_flags``.

    Added keys: ``gt_is_pasted`` (bool per instance, ``True`` for pool instances), ``paste_stats``
    (what was pasted, see :mod:`.paste_stats`; logged by ``PasteStatsHook``).

    When anything is pasted, every box becomes tight to its mask (as in X-Paste) and instances left
    with an empty mask are dropped.

    Args:
        pool_file: our ``pool_index.npz`` or an X-Paste pool ``.json`` (``{"<label>": ["*<path>"]}``).
        stats_file: our ``category_stats.json`` or X-Paste's ``area_mean_std2.json`` (size prior:
            mean/std of sqrt(box area / image area) per category id). A file sharing no category id
            with the dataset is refused; dataset categories it lacks are counted in a warning and use
            the average prior.
        ann_file: the training annotation file (a plain path, not joined with ``data_root``); only
            its ``categories`` are read (label ``i`` = ``i``-th smallest category id, frequencies
            for ``category_weights``).
        category_ids: the dataset's category ids, instead of ``ann_file``. With neither, the ids of
            ``stats_file`` are used (it lists every dataset category; for LVIS this is exactly
            ``label = category_id - 1``).
        max_num_pasted: the count is uniform in ``{0, ..., max_num_pasted - 1}``.
        sample_mode: ``'cas_random'`` (category-balanced), ``'random'`` (uniform over instances) or
            ``'cats_random'`` (categories of the image, all when it has none in the pool).
        category_weights: optional multipliers of a category's chance, keyed by category id or by
            LVIS frequency group ``'r'``/``'c'``/``'f'`` (e.g. ``dict(r=2.0)``), from ``ann_file``
            or our stats file.
        blend_modes: modes drawn uniformly per paste among ``'basic'``, ``'gaussian'``, ``'alpha'``.
        bbox_occluded_thr: pixels an occluded instance's box may move and still be kept.
        mask_occluded_thr: an occluded instance with more mask pixels than this is kept.
        min_visible_area: pasted instances with fewer visible mask pixels are not pasted / dropped
            (X-Paste kept even empty ones; 1 drops only empty masks).
        mask_threshold: instance mask = resized alpha > this (X-Paste: 0).
        min_scale_px: smallest relative size, in pixels of the image height (X-Paste: 10).
        max_scale: largest relative size (X-Paste: 0.5).
        aspect_jitter: aspect ratio multiplied by U(1 - j, 1 + j) (X-Paste: 0.2).
        min_side_px: instances narrower or lower than this are rejected (X-Paste: 5).
        flip_prob: per-instance horizontal flip probability (X-Paste: 0.5).
        rotate_range: rotation uniform in [-r, r] degrees with canvas expansion (X-Paste option: 30;
            0 = off, the X-Paste default).
        color_jitter: per-instance jitter strengths (brightness, contrast, saturation, hue); factors
            are uniform in ``1 +- s``, the hue shift in ``+- s`` of the colour circle.
        color_jitter_prob: probability of jittering an instance (X-Paste option: 0.5; default off).
        paste_on_empty: paste into images without annotations too (X-Paste skipped them).
        cache_size_mb: per-process decoded-crop cache in MiB (0 disables it).
        check_files: crop files checked for existence at start-up (count or ``'all'``; 0 = none).
        prob: probability of applying the transform to an image.

    Randomness comes from ``numpy.random`` (seeded per dataloader worker by mmengine), so a given
    seed gives the same pasted images. A missing or corrupt crop is skipped, warned about once per
    file and counted (``self.pool.skipped_reads``).

    X-Paste's ``both`` mode (pool pasting, then classic copy-paste from another training image) is
    this transform followed by ``dict(type='CachedCopyPaste')``, which needs no dataset wrapper and
    keeps ``gt_is_pasted`` aligned. mmdet's ``CopyPaste`` (in ``MultiImageMixDataset``) does not know
    the key: ``PackXPasteInputs`` rejects its output when the instance count changed, but cannot see
    a misalignment when instances were dropped and added in equal numbers, so do not combine them.
    """

    def __init__(self, pool_file: str, stats_file: str, ann_file: str | None = None,
                 category_ids: Sequence[int] | None = None, max_num_pasted: int = 20,
                 sample_mode: str = 'cas_random', category_weights: Mapping | None = None,
                 blend_modes: Sequence[str] = ('basic',), bbox_occluded_thr: float = 10,
                 mask_occluded_thr: int = 300, min_visible_area: int = 1, mask_threshold: int = 0,
                 min_scale_px: float = 10.0, max_scale: float = 0.5, aspect_jitter: float = 0.2,
                 min_side_px: int = 5, flip_prob: float = 0.5, rotate_range: float = 0.0,
                 color_jitter: Sequence[float] = (0.2, 0.2, 0.2, 0.2), color_jitter_prob: float = 0.0,
                 paste_on_empty: bool = True, cache_size_mb: float = 128, check_files: int | str = 256,
                 prob: float = 1.0) -> None:
        if sample_mode not in SAMPLE_MODES:
            raise ValueError(f'sample_mode {sample_mode!r} is not one of {SAMPLE_MODES}')
        bad_modes = [m for m in blend_modes if m not in BLEND_MODES]
        if not blend_modes or bad_modes:
            raise ValueError(f'blend_modes {list(blend_modes)} must be a non-empty list of {BLEND_MODES}')
        if max_num_pasted < 1:
            raise ValueError(f'max_num_pasted must be >= 1 (the count is uniform in 0..max-1), got '
                             f'{max_num_pasted}')
        if len(color_jitter) != 4:
            raise ValueError('color_jitter must be (brightness, contrast, saturation, hue)')
        self.pool_file, self.stats_file, self.ann_file = str(pool_file), str(stats_file), ann_file
        self.max_num_pasted = int(max_num_pasted)
        self.sample_mode = sample_mode
        self.blend_modes = tuple(blend_modes)
        self.bbox_occluded_thr = bbox_occluded_thr
        self.mask_occluded_thr = mask_occluded_thr
        self.min_visible_area = max(int(min_visible_area), 1)
        self.mask_threshold = int(mask_threshold)
        self.min_scale_px, self.max_scale = float(min_scale_px), float(max_scale)
        self.aspect_jitter = float(aspect_jitter)
        self.min_side_px = int(min_side_px)
        self.flip_prob = float(flip_prob)
        self.rotate_range = float(rotate_range)
        self.color_jitter = np.asarray(color_jitter, dtype=np.float64)
        self.color_jitter_prob = float(color_jitter_prob)
        self.paste_on_empty = paste_on_empty
        self.prob = float(prob)

        size_prior = load_size_prior(stats_file)
        ann_categories = read_ann_categories(ann_file) if ann_file is not None else None
        if ann_categories is not None:
            check_sorted_ids(ann_categories, ann_file)
        if category_ids is not None:
            dataset_ids, dataset_source = sorted_ids(category_ids), 'category_ids'
        elif ann_categories is not None:
            dataset_ids, dataset_source = sorted_ids(c['id'] for c in ann_categories), str(ann_file)
        else:
            dataset_ids, dataset_source = sorted(size_prior), str(stats_file)
        missing = missing_from_stats(size_prior, dataset_ids, stats_file, dataset_source)
        if missing:
            print_log(f'{stats_file}: no statistics for {len(missing)} of the {len(dataset_ids)} dataset '
                      f'categories of {dataset_source} (e.g. ids {missing[:5]}); their pasted instances '
                      'use the average size prior. Recompute it with `xpaste-pool stats` on the training '
                      'annotations.', logger='current', level=logging.WARNING)
        self.category_ids = dataset_ids
        frequencies = _frequencies(ann_categories, stats_file)  # read once, used twice
        weights = _resolve_weights(category_weights, frequencies)
        self.pool = InstancePool.from_file(pool_file, dataset_ids, category_weights=weights,
                                           cache_size_mb=cache_size_mb, check_files=check_files)
        self._size_mean, self._size_std = self._size_prior_arrays(size_prior)
        self.label_groups = label_frequency_groups(dataset_ids, frequencies)

    def _size_prior_arrays(self, prior: dict[int, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
        """Mean/std of relative size per usable pool category; categories without statistics (or with
        no annotation, mean 0) use the average over the others."""
        known = [v for v in prior.values() if v[0] > 0]
        if not known:
            raise ValueError(f'{self.stats_file}: no category has a positive size mean')
        fallback = (float(np.mean([v[0] for v in known])), float(np.mean([v[1] for v in known])))
        missing = [int(c) for c in self.pool.category_ids if prior.get(int(c), (0, 0))[0] <= 0]
        if missing:
            print_log(f'{self.stats_file}: no size statistics for {len(missing)} pool categor(ies) (e.g. ids '
                      f'{missing[:5]}); they use the average prior mean {fallback[0]:.3f} std '
                      f'{fallback[1]:.3f}', logger='current', level=logging.WARNING)
        stats = np.array([prior[c] if prior.get(c, (0, 0))[0] > 0 else fallback
                          for c in map(int, self.pool.category_ids)], dtype=np.float64).reshape(-1, 2)
        return stats[:, 0].copy(), stats[:, 1].copy()

    # ------------------------------------------------------------------ transform
    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f'XPasteCopyPaste expects a BGR uint8 (H, W, 3) image, got {img.dtype} '
                             f'{img.shape} for {results.get("img_path", "an image")}')
        num_existing = num_instances(results)
        if 'gt_is_pasted' not in results:
            results['gt_is_pasted'] = np.zeros(num_existing, dtype=bool)
        rng = np.random.default_rng(np.random.randint(0, 2**31, size=4))
        results[PASTE_STATS_KEY] = paste_record((), self.label_groups)
        if rng.random() >= self.prob or (num_existing == 0 and not self.paste_on_empty):
            return results
        skipped_reads = self.pool.skipped_reads
        instances = self.sample_instances(rng, img.shape[:2], results.get('gt_bboxes_labels'))
        if instances:
            results = self.composite(results, instances)
        results[PASTE_STATS_KEY]['unreadable'] = self.pool.skipped_reads - skipped_reads
        return results

    def sample_instances(self, rng: np.random.Generator, img_shape: tuple[int, int],
                         image_labels: np.ndarray | None = None) -> list[PreparedInstance]:
        """Draw the count, pool rows and every random parameter, then load, size and augment the
        crops. Rejected draws (too small/large, unreadable crop) are dropped, not redrawn."""
        height, width = img_shape
        count = int(rng.integers(self.max_num_pasted))
        if count == 0:
            return []
        rows = self.pool.sample(rng, count, self.sample_mode, image_labels)
        normal = rng.standard_normal(count)
        aspect = rng.uniform(1 - self.aspect_jitter, 1 + self.aspect_jitter, count)
        flips = rng.random(count) < self.flip_prob
        angles = rng.uniform(-self.rotate_range, self.rotate_range, count)
        blends = rng.integers(len(self.blend_modes), size=count)
        centres = rng.random((count, 2))
        jitter_on = rng.random(count) < self.color_jitter_prob
        jitter = rng.uniform(-1, 1, (count, 4)) * self.color_jitter

        crops = self.pool.open_crops(rows)
        ok = np.array([c is not None for c in crops])
        crop_w = np.array([c.width if c is not None else 1 for c in crops], dtype=np.float64)
        crop_h = np.array([c.height if c is not None else 1 for c in crops], dtype=np.float64)
        cats = np.searchsorted(self.pool.starts, rows, side='right') - 1
        tw, th = target_sizes(normal, aspect, self._size_mean[cats], self._size_std[cats], crop_w, crop_h,
                              height, width, self.min_scale_px, self.max_scale)
        ok &= (tw >= self.min_side_px) & (th >= self.min_side_px) & (tw < width) & (th < height)
        instances = []
        for i in np.flatnonzero(ok):
            pixels = crops[i].pixels(int(tw[i]), int(th[i]))
            if pixels is None:
                continue
            patch = cv2.resize(pixels, (int(tw[i]), int(th[i])), interpolation=cv2.INTER_LINEAR)
            if flips[i]:
                patch = cv2.flip(patch, 1)
            if self.rotate_range:
                patch = rotate_expanded(patch, float(angles[i]))
            bgr, alpha = cv2.cvtColor(patch, cv2.COLOR_BGRA2BGR), cv2.extractChannel(patch, 3)
            if jitter_on[i]:
                b, c, s, h = jitter[i]
                bgr = jitter_colors(bgr, alpha, 1 + b, 1 + c, 1 + s, h)
            mask = (alpha > self.mask_threshold).view(np.uint8)
            h_px, w_px = mask.shape
            instances.append(PreparedInstance(
                x0=int(centres[i, 0] * width) - w_px // 2, y0=int(centres[i, 1] * height) - h_px // 2,
                bgr=bgr, alpha=alpha, mask=mask, label=int(self.pool.labels[cats[i]]),
                blend=self.blend_modes[blends[i]]))
        return instances

    def composite(self, results: dict, instances: Sequence[PreparedInstance]) -> dict:
        """Paste ``instances`` one at a time (later ones on top), update the annotations and
        ``results['paste_stats']``."""
        if 'gt_is_pasted' not in results:
            results['gt_is_pasted'] = np.zeros(num_instances(results), dtype=bool)
        results[PASTE_STATS_KEY] = paste_record((), self.label_groups)
        img = np.array(results['img'], dtype=np.uint8, order='C', copy=True)
        height, width = img.shape[:2]
        layers = InstanceLayers(*read_instances(results, height, width),
                                bbox_occluded_thr=self.bbox_occluded_thr,
                                mask_occluded_thr=self.mask_occluded_thr)
        num_before = len(layers)
        empty_before = sum(layers.area(j) == 0 for j in range(num_before))  # dropped, but not occluded
        pasted = 0
        for inst in instances:
            h, w = inst.mask.shape
            vx0, vy0 = max(inst.x0, 0), max(inst.y0, 0)
            vx1, vy1 = min(inst.x0 + w, width), min(inst.y0 + h, height)
            if vx1 <= vx0 or vy1 <= vy0:
                continue
            visible = (slice(vy0 - inst.y0, vy1 - inst.y0), slice(vx0 - inst.x0, vx1 - inst.x0))
            mask = inst.mask[visible]
            area = cv2.countNonZero(mask)
            if area < self.min_visible_area:
                continue
            bx, by, bw, bh = cv2.boundingRect(mask)
            window = mask[by:by + bh, bx:bx + bw].copy()
            layers.occlude(vx0 + bx, vy0 + by, window)
            blend_instance(img, vx0, vy0, inst.bgr[visible], inst.alpha[visible], mask, inst.blend)
            layers.append(vx0 + bx, vy0 + by, window, inst.label, area=area,
                          box=np.array([vx0 + bx, vy0 + by, vx0 + bx + bw, vy0 + by + bh]))
            pasted += 1
        if pasted == 0:
            return results
        out = layers.finalize(self.min_visible_area)
        visible = sum(1 for j in range(num_before, len(layers))
                      if layers.alive[j] and layers.area(j) >= self.min_visible_area)
        results[PASTE_STATS_KEY] = paste_record(
            out['labels'][len(out['labels']) - visible:], self.label_groups,
            occluded=len(layers) - len(out['labels']) - empty_before)
        write_instances(results, img, out)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(pool_file={self.pool_file!r}, stats_file={self.stats_file!r}, '
                f'max_num_pasted={self.max_num_pasted}, sample_mode={self.sample_mode!r}, '
                f'blend_modes={self.blend_modes}, bbox_occluded_thr={self.bbox_occluded_thr}, '
                f'mask_occluded_thr={self.mask_occluded_thr}, min_visible_area={self.min_visible_area}, '
                f'mask_threshold={self.mask_threshold}, rotate_range={self.rotate_range}, '
                f'color_jitter_prob={self.color_jitter_prob}, paste_on_empty={self.paste_on_empty}, '
                f'prob={self.prob}, pool_instances={self.pool.check.num_usable})')


def _frequencies(ann_categories: list[dict] | None, stats_file: str) -> dict[int, str | None]:
    """``{category id: LVIS frequency group}`` from the annotation file's categories when given, else
    from the statistics file."""
    if ann_categories is not None:
        return {int(c['id']): c.get('frequency') for c in ann_categories}
    return load_frequencies(stats_file)


def _resolve_weights(weights: Mapping | None, frequency: Mapping[int, str | None]) -> dict[int, float] | None:
    """Turn ``{category id or 'r'/'c'/'f': weight}`` into ``{category id: weight}`` given
    ``{category id: frequency group}``."""
    if not weights:
        return None
    groups = {k: float(v) for k, v in weights.items() if isinstance(k, str)}
    resolved = {int(k): float(v) for k, v in weights.items() if not isinstance(k, str)}
    if not groups:
        return resolved
    unknown = [g for g in groups if g not in FREQUENCY_GROUPS]
    if unknown:
        raise ValueError(f'category_weights keys {unknown} are neither category ids nor one of '
                         f'{FREQUENCY_GROUPS}')
    if not any(f in FREQUENCY_GROUPS for f in frequency.values()):
        raise ValueError('category_weights by frequency group need category frequencies: pass ann_file '
                         '(LVIS) or a category_stats.json written by `xpaste-pool stats` as stats_file')
    for cat, freq in frequency.items():
        if freq in groups and cat not in resolved:
            resolved[cat] = groups[freq]
    return resolved
