"""Deterministic synthetic LVIS v1 data: a user-facing dataset generator for experiments, demos and tests.

Images are textured backgrounds with filled shapes (one colour + shape kind per category) of varied
size and aspect, some overlapping, some cut by the image border. Every LVIS v1 field is written:
categories with name/synonyms/def/synset/frequency/image_count/instance_count, images with
``neg_category_ids``/``not_exhaustive_category_ids`` and ``coco_url``-style paths under
``train2017/`` and ``val2017/`` (so mmdet's ``LVISV1Dataset`` resolves them against ``data_root``),
and polygon annotations with ``bbox`` as ``[x, y, w, h]`` in pixels.

Frequency groups are assigned by image-count rank (top third ``f``, middle ``c``, rest ``r``) so small
sets still have rare, common and frequent categories, as LVIS metrics expect. The drawing helpers
(:func:`category_style`, :func:`shape_polygon`, :func:`textured_background`) are shared with the test
fixtures of :mod:`xpaste_mm.testing` (object images for pool building).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..utils.io import atomic_write_json

COCO_URL_PREFIX = 'http://images.cocodataset.org/'

#: Base vocabulary; names deliberately include spaces, parentheses, a slash and non-ASCII text so that
#: every consumer (folder names, prompts, configs) meets them in tests.
BASE_NAMES = (
    'aerosol_can', 'bat_(animal)', 'monitor_(computer_equipment) computer_monitor', 'teddy_bear',
    'ball', 'AC/DC_adapter', 'crème_brûlée', 'traffic_light', 'kite', 'mug', 'shoe', 'umbrella',
    'apple', 'banana', 'bottle', 'candle', 'drum_(musical_instrument)', 'flag', 'glove', 'hat',
)
SHAPES = ('ellipse', 'rectangle', 'triangle', 'star', 'hexagon')


@dataclass(frozen=True)
class SyntheticLVIS:
    """Paths of a generated synthetic LVIS dataset (all absolute)."""

    root: Path
    train_ann: Path
    val_ann: Path
    class_names: tuple[str, ...]


def category_names(num_categories: int) -> tuple[str, ...]:
    """The first ``num_categories`` synthetic category names (suffixed when the base list runs out)."""
    names = []
    for index in range(num_categories):
        base = BASE_NAMES[index % len(BASE_NAMES)]
        names.append(base if index < len(BASE_NAMES) else f'{base}_{index // len(BASE_NAMES)}')
    return tuple(names)


def category_style(index: int) -> tuple[str, tuple[int, int, int]]:
    """Shape kind and BGR colour of a category (fixed, so a detector can learn it)."""
    hue = (index * 47) % 180
    hsv = np.uint8([[[hue, 200 + (index * 13) % 56, 230 - (index * 29) % 90]]])
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return SHAPES[index % len(SHAPES)], tuple(int(c) for c in bgr)


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth random colour field plus stripes: uint8 BGR (H, W, 3)."""
    coarse = rng.integers(40, 200, size=(4, 5, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    angle, period = rng.uniform(0, math.pi), rng.uniform(8, 40)
    stripes = 18 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    noise = rng.normal(0, 6, size=(height, width, 3))
    return np.clip(image + stripes[..., None] + noise, 0, 255).astype(np.uint8)


def shape_polygon(kind: str, cx: float, cy: float, w: float, h: float, rot: float) -> np.ndarray:
    """Vertices (N, 2) of a shape of box size w x h centred at (cx, cy), rotated by ``rot`` rad."""
    if kind == 'ellipse':
        t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
        pts = np.stack([np.cos(t) * w / 2, np.sin(t) * h / 2], 1)
    elif kind == 'rectangle':
        pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    elif kind == 'triangle':
        pts = np.array([[0, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    elif kind == 'star':
        t = np.linspace(0, 2 * math.pi, 10, endpoint=False)
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([np.cos(t) * radius * w / 2, np.sin(t) * radius * h / 2], 1)
    else:  # hexagon
        t = np.linspace(0, 2 * math.pi, 6, endpoint=False)
        pts = np.stack([np.cos(t) * w / 2, np.sin(t) * h / 2], 1)
    c, s = math.cos(rot), math.sin(rot)
    pts = pts @ np.array([[c, s], [-s, c]])
    return pts + np.array([cx, cy])


def _draw_objects(rng, image, cat_ids, num_objects):
    """Draw objects onto ``image`` (in place); returns annotation dicts without ids."""
    height, width = image.shape[:2]
    annotations = []
    for _ in range(num_objects):
        cat_index = int(rng.integers(len(cat_ids)))
        kind, colour = category_style(cat_index)
        rel = rng.uniform(0.08, 0.45)
        aspect = rng.uniform(0.5, 2.0)
        w = max(6.0, rel * width * math.sqrt(aspect))
        h = max(6.0, rel * height / math.sqrt(aspect))
        # Centres may lie close to the border, so some objects are cut by it.
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        pts = shape_polygon(kind, cx, cy, w, h, rng.uniform(-0.5, 0.5))
        pts[:, 0] = np.clip(pts[:, 0], 0, width - 1)
        pts[:, 1] = np.clip(pts[:, 1], 0, height - 1)
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        area = float(cv2.contourArea(pts.astype(np.float32)))
        if x1 - x0 < 4 or y1 - y0 < 4 or area < 16:
            continue
        cv2.fillPoly(image, [np.round(pts).astype(np.int32)], colour, lineType=cv2.LINE_AA)
        annotations.append(dict(
            category_id=cat_ids[cat_index],
            segmentation=[[round(float(v), 2) for v in pts.reshape(-1)]],
            bbox=[round(float(x0), 2), round(float(y0), 2),
                  round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
            area=round(area, 2)))
    return annotations


def _make_split(rng, root: Path, split: str, num_images: int, cat_ids, image_size, max_objects,
                id_offset: int) -> dict:
    folder = root / f'{split}2017'
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image_id = id_offset + index + 1
        height = int(image_size[0] * rng.uniform(0.8, 1.0))
        width = int(image_size[1] * rng.uniform(0.8, 1.0))
        image = textured_background(rng, height, width)
        anns = _draw_objects(rng, image, cat_ids, int(rng.integers(1, max_objects + 1)))
        file_name = f'{image_id:012d}.jpg'
        cv2.imwrite(str(folder / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        present = sorted({a['category_id'] for a in anns})
        absent = [c for c in cat_ids if c not in present]
        neg = sorted(rng.choice(absent, size=min(len(absent), 2), replace=False).tolist()) if absent else []
        not_exhaustive = [c for c in present if rng.random() < 0.1]
        images.append(dict(
            id=image_id, width=width, height=height, license=1,
            coco_url=f'{COCO_URL_PREFIX}{split}2017/{file_name}',
            flickr_url=f'http://example.invalid/{file_name}', date_captured='2026-01-01 00:00:00',
            neg_category_ids=[int(c) for c in neg], not_exhaustive_category_ids=not_exhaustive))
        for ann in anns:
            ann.update(id=id_offset * 100 + len(annotations) + 1, image_id=image_id)
            annotations.append(ann)
    return dict(images=images, annotations=annotations)


def _categories(names, split_data: dict) -> list[dict]:
    cat_ids = list(range(1, len(names) + 1))
    image_count = {c: 0 for c in cat_ids}
    instance_count = {c: 0 for c in cat_ids}
    for ann in split_data['annotations']:
        instance_count[ann['category_id']] += 1
    for image_cats in _image_categories(split_data).values():
        for c in image_cats:
            image_count[c] += 1
    ranked = sorted(cat_ids, key=lambda c: (-image_count[c], c))
    third = max(1, len(ranked) // 3)
    frequency = {c: ('f' if r < third else 'c' if r < 2 * third else 'r') for r, c in enumerate(ranked)}
    return [{'id': c, 'name': name, 'synonyms': [name], 'def': f'a synthetic {name.replace("_", " ")}',
             'synset': f'synthetic_{c}.n.01', 'frequency': frequency[c],
             'image_count': image_count[c], 'instance_count': instance_count[c]}
            for c, name in zip(cat_ids, names)]


def _image_categories(split_data: dict) -> dict[int, set[int]]:
    per_image: dict[int, set[int]] = {img['id']: set() for img in split_data['images']}
    for ann in split_data['annotations']:
        per_image[ann['image_id']].add(ann['category_id'])
    return per_image


def make_synthetic_lvis(root: str | os.PathLike, num_train: int = 16, num_val: int = 8,
                        num_categories: int = 8, image_size: tuple[int, int] = (240, 320),
                        max_objects: int = 6, seed: int = 0) -> SyntheticLVIS:
    """Write a synthetic LVIS v1 dataset under ``root`` and return its paths.

    Layout: ``root/train2017/*.jpg``, ``root/val2017/*.jpg`` and
    ``root/annotations/lvis_v1_{train,val}.json``. ``image_size`` is the maximum (height, width) in
    pixels; each image is 80-100% of it. Output is a pure function of the arguments.
    """
    if num_categories < 1 or num_train < 1 or num_val < 1:
        raise ValueError('num_categories, num_train and num_val must all be >= 1, got '
                         f'{num_categories}, {num_train}, {num_val}')
    root = Path(root).resolve()
    names = category_names(num_categories)
    cat_ids = list(range(1, num_categories + 1))
    rng = np.random.default_rng(seed)
    paths = {}
    for split, count, offset in (('train', num_train, 0), ('val', num_val, 1_000_000)):
        data = _make_split(rng, root, split, count, cat_ids, image_size, max_objects, offset)
        data['categories'] = _categories(names, data)
        data['info'] = dict(description=f'synthetic LVIS v1 ({split}), seed {seed}', version='1.0')
        data['licenses'] = [dict(id=1, name='CC BY 4.0', url='https://creativecommons.org/licenses/by/4.0/')]
        paths[split] = root / 'annotations' / f'lvis_v1_{split}.json'
        atomic_write_json(paths[split], data)
    return SyntheticLVIS(root=root, train_ann=paths['train'], val_ann=paths['val'], class_names=names)
