"""LVIS ground truth held as flat arrays, with the selection rules of lvis-api's ``LVISEval``.

lvis-api evaluates every image of the annotation file (sorted by id) and every category (sorted by
id). It only loads annotations whose ``area`` is strictly positive (``LVIS.get_ann_ids`` filters
``0 < area < inf``), so zero-area ground truth is neither a positive nor marks its category as
present in the image. Within an image, annotations keep their file order, which decides ties in
matching. Boxes are ``[x, y, w, h]`` in pixels, as in the file.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pycocotools.mask as mask_utils

from ..categories import FREQUENCY_GROUPS  # r, c, f: also lvis-api's order of ``img_count_lbl``
from .fast_json import loads, paused_gc
from .lvis_gt_segmentations import GTSegmentations


def _require(record: dict, field: str, where: str):
    if field not in record:
        raise ValueError(f'{where}: missing field {field!r}, which LVIS evaluation needs '
                         f'(got fields {sorted(record)})')
    return record[field]


def pair_keys(image_index: np.ndarray, category_index: np.ndarray, num_categories: int) -> np.ndarray:
    """One int64 key per (image index, category index) pair: ``image * num_categories + category``."""
    return image_index.astype(np.int64) * num_categories + category_index.astype(np.int64)


def sorted_lookup(known: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``values`` in the ascending array ``known`` (int64), and which values are in it."""
    values = np.asarray(values)
    if len(known) == 0:
        return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    position = np.searchsorted(known, values).clip(max=len(known) - 1)
    return position, known[position] == values


@dataclass
class LVISGroundTruth:
    """Images, categories and evaluated annotations of an LVIS v1 annotation file.

    Annotation arrays are ordered by (category, image, file order). Pair keys (see :func:`pair_keys`)
    are sorted, so membership is a binary search.
    """

    source: str
    image_ids: np.ndarray  # (I,) int64, ascending
    image_heights: np.ndarray  # (I,) int64, pixels
    image_widths: np.ndarray  # (I,) int64, pixels
    category_ids: np.ndarray  # (K,) int64, ascending
    file_category_ids: tuple[int, ...]  # category ids in file order (mmdet's label order)
    category_names: tuple[str, ...]  # by ascending id
    category_frequencies: tuple[str, ...]  # 'r' / 'c' / 'f', by ascending id
    ann_ids: np.ndarray  # (A,) int64
    ann_image: np.ndarray  # (A,) int32 index into image_ids
    ann_category: np.ndarray  # (A,) int32 index into category_ids
    ann_area: np.ndarray  # (A,) float64, pixels^2
    ann_bbox: np.ndarray  # (A, 4) float64, x y w h pixels
    ann_ignore: np.ndarray  # (A,) bool, the optional 'ignore' field
    ann_segmentation: GTSegmentations  # (A,) polygons / RLE as in the file
    category_starts: np.ndarray  # (K + 1,) annotation rows of category k: starts[k]:starts[k + 1]
    present_pairs: np.ndarray  # sorted keys of (image, category) with evaluated annotations
    negative_pairs: np.ndarray  # sorted keys from images' neg_category_ids
    not_exhaustive_pairs: np.ndarray  # sorted keys from images' not_exhaustive_category_ids

    @property
    def num_categories(self) -> int:
        return len(self.category_ids)

    @property
    def frequency_groups(self) -> list[list[int]]:
        """Category indices of the rare, common and frequent groups (lvis-api's ``freq_groups``)."""
        groups: list[list[int]] = [[] for _ in FREQUENCY_GROUPS]
        for index, frequency in enumerate(self.category_frequencies):
            groups[FREQUENCY_GROUPS.index(frequency)].append(index)
        return groups

    @cached_property
    def federated_pairs(self) -> np.ndarray:
        """Sorted keys of the (image, category) pairs lvis-api evaluates: present or negative."""
        return np.union1d(self.present_pairs, self.negative_pairs)

    def federated(self, image_index: np.ndarray, category_index: np.ndarray) -> np.ndarray:
        """Bool per detection: lvis-api evaluates its category in its image (federated rule)."""
        return sorted_lookup(self.federated_pairs, pair_keys(image_index, category_index,
                                                             self.num_categories))[1]

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> LVISGroundTruth:
        """Read an LVIS v1 annotation json file."""
        with open(path, 'rb') as f, paused_gc():
            return cls.from_dict(loads(f.read()), source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = '<dict>') -> LVISGroundTruth:
        """Build from a loaded LVIS annotation dict (``images``, ``annotations``, ``categories``)."""
        for field in ('images', 'annotations', 'categories'):
            _require(data, field, source)
        categories = sorted(data['categories'], key=lambda c: _require(c, 'id', f'{source} categories'))
        category_ids = np.array([c['id'] for c in categories], dtype=np.int64)
        if len(np.unique(category_ids)) != len(category_ids):
            raise ValueError(f'{source}: duplicate category ids')
        frequencies = []
        for cat in categories:
            frequency = _require(cat, 'frequency', f'{source} category {cat["id"]}')
            if frequency not in FREQUENCY_GROUPS:
                raise ValueError(f'{source} category {cat["id"]}: frequency must be one of '
                                 f'{FREQUENCY_GROUPS}, got {frequency!r}')
            frequencies.append(frequency)

        images = sorted(data['images'], key=lambda im: _require(im, 'id', f'{source} images'))
        image_ids = np.array([im['id'] for im in images], dtype=np.int64)
        if len(np.unique(image_ids)) != len(image_ids):
            raise ValueError(f'{source}: duplicate image ids')
        num_categories = len(category_ids)
        negative, not_exhaustive = [], []
        for index, image in enumerate(images):
            where = f'{source} image {image["id"]}'
            for field, out in (('neg_category_ids', negative),
                               ('not_exhaustive_category_ids', not_exhaustive)):
                ids = np.asarray(_require(image, field, where), dtype=np.int64)
                position, known = sorted_lookup(category_ids, ids)
                out.append(index * num_categories + position[known])

        annotations = data['annotations']
        ann_image_ids = np.array([a['image_id'] for a in annotations], dtype=np.int64)
        ann_cat_ids = np.array([a['category_id'] for a in annotations], dtype=np.int64)
        ann_area = np.array([float(a['area']) for a in annotations], dtype=np.float64)
        image_pos, known_image = sorted_lookup(image_ids, ann_image_ids)
        cat_pos, known_category = sorted_lookup(category_ids, ann_cat_ids)
        # lvis-api: only annotations of listed images and categories with 0 < area < inf are loaded.
        keep = known_image & known_category & (ann_area > 0) & (ann_area < math.inf)
        file_order = np.flatnonzero(keep)
        order = file_order[np.lexsort((file_order, image_pos[file_order], cat_pos[file_order]))]
        ann_category = cat_pos[order].astype(np.int32)
        ann_image = image_pos[order].astype(np.int32)
        bbox = np.array([annotations[i]['bbox'] for i in order], dtype=np.float64).reshape(-1, 4)
        return cls(
            source=source,
            image_ids=image_ids,
            image_heights=np.array([_require(im, 'height', source) for im in images], dtype=np.int64),
            image_widths=np.array([_require(im, 'width', source) for im in images], dtype=np.int64),
            category_ids=category_ids,
            file_category_ids=tuple(int(c['id']) for c in data['categories']),
            category_names=tuple(c.get('name', str(c['id'])) for c in categories),
            category_frequencies=tuple(frequencies),
            ann_ids=np.array([annotations[i]['id'] for i in order], dtype=np.int64),
            ann_image=ann_image,
            ann_category=ann_category,
            ann_area=ann_area[order],
            ann_bbox=bbox,
            ann_ignore=np.array([bool(annotations[i].get('ignore', 0)) for i in order], dtype=bool),
            ann_segmentation=GTSegmentations.from_list([annotations[i].get('segmentation') for i in order]),
            category_starts=np.searchsorted(ann_category, np.arange(num_categories + 1)),
            present_pairs=np.unique(pair_keys(ann_image, ann_category, num_categories)),
            negative_pairs=np.unique(np.concatenate(negative or [np.zeros(0, np.int64)])),
            not_exhaustive_pairs=np.unique(np.concatenate(not_exhaustive or [np.zeros(0, np.int64)])),
        )

    def image_index(self, image_ids: np.ndarray) -> np.ndarray:
        """Indices (int32) of image ids in :attr:`image_ids`; ValueError for ids not in the file."""
        image_ids = np.asarray(image_ids, dtype=np.int64)
        position, known = sorted_lookup(self.image_ids, image_ids)
        unknown = ~known
        if unknown.any():
            raise ValueError(f'results name image ids that are not in {self.source}: '
                             f'{sorted(set(image_ids[unknown].tolist()))[:10]}')
        return position.astype(np.int32)

    def category_rows(self, category_index: int) -> slice:
        """Annotation rows of one category (ordered by image, then file order)."""
        return slice(int(self.category_starts[category_index]),
                     int(self.category_starts[category_index + 1]))

    def rles(self, rows: Sequence[int]) -> list[dict]:
        """Compressed RLEs of annotation rows, converted as lvis-api's ``LVIS.ann_to_rle`` does."""
        out = []
        for row in rows:
            segmentation = self.ann_segmentation[row]
            image = self.ann_image[row]
            height, width = int(self.image_heights[image]), int(self.image_widths[image])
            if isinstance(segmentation, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
            elif isinstance(segmentation, dict) and isinstance(segmentation.get('counts'), list):
                rle = mask_utils.frPyObjects(segmentation, height, width)
            elif isinstance(segmentation, dict):
                rle = segmentation
            else:
                raise ValueError(f'{self.source}: annotation {int(self.ann_ids[row])} has no usable '
                                 f'segmentation (got {type(segmentation).__name__})')
            out.append(rle)
        return out
