"""Synthetic images: object pictures for pool building, photos with an object mask, paste destinations.

Every image is BGR uint8 (OpenCV channel order), masks are uint8, sizes are in pixels; output is a pure
function of the arguments and ``seed``/``rng``.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..datasets.synthetic_lvis import category_style, shape_polygon, textured_background


def render_object_images(out_dir: str | os.PathLike, class_names: tuple[str, ...], per_category: int,
                         folder_names: dict[str, str], image_size: int = 128,
                         seed: int = 0) -> dict[str, list[Path]]:
    """Stand-ins for generated object images: one object of each category's synthetic LVIS style,
    centred, on a plain or textured background (BGR PNG, ``image_size`` px square).

    Images go to ``out_dir/<folder_names[name]>/<k:04d>.png`` (one folder per category, the layout
    ``pool_builder ingest`` reads). Deterministic per ``seed``; returns ``{name: [paths]}``.
    """
    rng = np.random.default_rng(seed)
    written: dict[str, list[Path]] = {}
    for index, name in enumerate(class_names):
        kind, colour = category_style(index)
        folder = Path(out_dir) / folder_names[name]
        folder.mkdir(parents=True, exist_ok=True)
        written[name] = []
        for k in range(per_category):
            if rng.random() < 0.5:
                image = np.full((image_size, image_size, 3), rng.integers(200, 256), dtype=np.uint8)
            else:
                image = textured_background(rng, image_size, image_size)
            w, h = image_size * rng.uniform(0.45, 0.75), image_size * rng.uniform(0.45, 0.75)
            centre = image_size / 2 + rng.uniform(-0.08, 0.08, size=2) * image_size
            pts = shape_polygon(kind, centre[0], centre[1], w, h, rng.uniform(-0.4, 0.4))
            cv2.fillPoly(image, [np.round(pts).astype(np.int32)], colour, lineType=cv2.LINE_AA)
            path = folder / f'{k:04d}.png'
            cv2.imwrite(str(path), image)
            written[name].append(path)
    return written


def photo_with_object_mask(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured ``size`` x ``size`` "photo" and its soft object mask (uint8 0..255): one blurred
    ellipse with a hole, plus a small speck away from it (what the filter stage must drop)."""
    yy, xx = np.mgrid[0:size, 0:size]
    coarse = rng.integers(40, 220, size=(4, 4, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    image += 10 * np.sin((xx + yy * rng.uniform(0.2, 1.0)) / rng.uniform(4, 12))[..., None]
    image += rng.normal(0, 5, image.shape)
    mask = np.zeros((size, size), np.uint8)
    centre = tuple(int(v) for v in rng.integers(size // 3, 2 * size // 3, 2))
    axes = tuple(int(v) for v in rng.integers(size // 8, size // 3, 2))
    cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    cv2.circle(mask, (centre[0] + axes[0] // 3, centre[1]), max(2, axes[1] // 5), 0, -1)  # a hole
    cv2.circle(mask, (size // 10, size // 10), size // 40, 255, -1)  # a speck to drop
    mask = cv2.GaussianBlur(mask, (7, 7), 0)
    image[mask > 128] = rng.integers(0, 255, 3)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def paste_destination(seed: int, num_instances: int, size: int = 640, num_classes: int = 1203) -> dict:
    """Pipeline results of a random ``size`` x ``size`` image (``size`` > 100) with ``num_instances``
    elliptic instances (centres 50 px or more from the border, half-axes 20-160 px): ``img`` (BGR),
    ``img_shape``, ``gt_bboxes`` (x1y1x2y2, tight to the masks), ``gt_bboxes_labels`` (in
    ``[0, num_classes)``), ``gt_ignore_flags`` and ``gt_masks`` (``BitmapMasks``)."""
    from mmdet.structures.mask import BitmapMasks

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    masks = np.zeros((num_instances, size, size), np.uint8)
    for mask in masks:
        centre = tuple(int(v) for v in rng.integers(50, size - 50, 2))
        axes = tuple(int(v) for v in rng.integers(20, 160, 2))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    bitmaps = BitmapMasks(masks, size, size)
    return dict(img=img, img_shape=(size, size), gt_bboxes=bitmaps.get_bboxes('hbox'),
                gt_bboxes_labels=rng.integers(0, num_classes, num_instances),
                gt_ignore_flags=np.zeros(num_instances, bool), gt_masks=bitmaps)
