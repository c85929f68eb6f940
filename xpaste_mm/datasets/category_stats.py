"""Per-category statistics from a training annotation file.

One JSON file (``category_stats.json``) replaces X-Paste's ``area_mean_std2.json`` (size prior of
the paste transform) and ``lvis_v1_train_cat_info.json`` (federated-loss weights)::

    {"version": 1, "ann_file": "...", "categories": [
        {"id": 1, "name": "aerosol_can", "frequency": "c", "image_count": 64,
         "instance_count": 109, "size_mean": 0.083, "size_std": 0.041}, ...]}

``size_mean``/``size_std`` are the mean and population std of ``sqrt(box area / image area)`` over
the category's annotations (a linear relative size, 0 when the category has none). The readers also
accept the two original X-Paste files, so existing metadata works unchanged.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..utils.io import atomic_write_json

STATS_VERSION = 1


def compute_category_stats(ann_file: str | os.PathLike) -> dict:
    """Compute the statistics of every category of an LVIS/COCO-format annotation file."""
    data = _read_json(ann_file)
    for key in ('images', 'annotations', 'categories'):
        if key not in data:
            raise ValueError(f'{ann_file}: missing top-level field "{key}" (expected LVIS/COCO format)')
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


def load_size_prior(path: str | os.PathLike) -> dict[int, tuple[float, float]]:
    """``{category_id: (mean, std)}`` of relative size, from our stats file or X-Paste's
    ``area_mean_std2.json`` (``{"<1-based id>": [mean, std]}``)."""
    data = _read_json(path)
    if isinstance(data, dict) and 'categories' in data:
        return {int(c['id']): (float(c['size_mean']), float(c['size_std'])) for c in data['categories']}
    if isinstance(data, dict):
        try:
            return {int(k): (float(v[0]), float(v[1])) for k, v in data.items()}
        except (ValueError, TypeError, IndexError) as exc:
            raise ValueError(f'{path}: expected {{"<category id>": [mean, std]}} entries ({exc})') from exc
    raise ValueError(f'{path}: not a category-stats file nor an area_mean_std JSON object')


def load_image_counts(path: str | os.PathLike) -> dict[int, int]:
    """``{category_id: image_count}`` from our stats file, X-Paste's ``*_cat_info.json`` (a list of
    category dicts) or any LVIS annotation file (its ``categories``)."""
    data = _read_json(path)
    categories = data.get('categories') if isinstance(data, dict) else data
    if not isinstance(categories, list):
        raise ValueError(f'{path}: expected a list of categories or an object with "categories"')
    try:
        return {int(c['id']): int(c['image_count']) for c in categories}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f'{path}: every category needs "id" and "image_count" ({exc})') from exc


def _read_json(path: str | os.PathLike):
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f'statistics/annotation file {path} does not exist') from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path}: not valid JSON ({exc})') from exc
