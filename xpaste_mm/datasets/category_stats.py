"""Per-category statistics from a training annotation file.

One JSON file (``category_stats.json``) replaces X-Paste's ``area_mean_std2.json`` (size prior of
the paste transform) and ``lvis_v1_train_cat_info.json`` (federated-loss weights)::

    {"version": 1, "ann_file": "...", "categories": [
        {"id": 1, "name": "aerosol_can", "frequency": "c", "image_count": 64,
         "instance_count": 109, "size_mean": 0.083, "size_std": 0.041}, ...]}

``size_mean``/``size_std`` are the mean and population std of ``sqrt(box area / image area)`` over
the category's annotations (a linear relative size, 0 when the category has none). The readers
(:func:`~xpaste_mm.categories.load_size_prior`, :func:`~xpaste_mm.categories.load_image_counts`) live
in :mod:`xpaste_mm.categories` and also accept the two original X-Paste files.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..categories import CategoryError, check_unique_ids, read_json
from ..utils.io import atomic_write_json

STATS_VERSION = 1


def compute_category_stats(ann_file: str | os.PathLike) -> dict:
    """Compute the statistics of every category of an LVIS/COCO-format annotation file.

    Refuses (:class:`~xpaste_mm.categories.CategoryError`) a file with repeated category ids, like
    the pool builder's vocabulary loader.
    """
    data = read_json(ann_file, 'annotation file')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data, dict) or key not in data:
            raise CategoryError(f'{ann_file}: missing top-level field "{key}" (expected LVIS/COCO format)')
    check_unique_ids(data['categories'], ann_file)
    image_area = {img['id']: float(img['width']) * float(img['height']) for img in data['images']}
    sizes: dict[int, list[float]] = defaultdict(list)
    images_of: dict[int, set] = defaultdict(set)
    for n, ann in enumerate(data['annotations']):
        try:
            cat, img, (_, _, w, h) = ann['category_id'], ann['image_id'], ann['bbox']
        except (KeyError, ValueError) as exc:
            raise ValueError(f'{ann_file}: annotation #{n} lacks a valid category_id, image_id or '
                             f'bbox [x, y, w, h] ({exc})') from exc
        if img not in image_area:
            raise ValueError(f'{ann_file}: annotation #{n} refers to unknown image_id {img}')
        sizes[cat].append(np.sqrt(max(w, 0.0) * max(h, 0.0) / image_area[img]))
        images_of[cat].add(img)
    categories = []
    for cat in sorted(data['categories'], key=lambda c: c['id']):
        values = np.asarray(sizes.get(cat['id'], []), dtype=np.float64)
        categories.append(dict(
            id=int(cat['id']), name=cat.get('name', str(cat['id'])),
            frequency=cat.get('frequency', ''), image_count=len(images_of.get(cat['id'], ())),
            instance_count=int(values.size),
            size_mean=float(values.mean()) if values.size else 0.0,
            size_std=float(values.std()) if values.size else 0.0))
    return dict(version=STATS_VERSION, ann_file=str(ann_file), categories=categories)


def save_category_stats(stats: dict, path: str | os.PathLike) -> Path:
    """Write statistics from :func:`compute_category_stats` atomically."""
    return atomic_write_json(path, stats, indent=1)
