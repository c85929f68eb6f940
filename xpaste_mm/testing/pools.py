"""Synthetic instance pools: random RGBA crops on disk with their index, and paths-only indexes."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..datasets.pool_index import INDEX_FILENAME, PoolIndex


def make_synthetic_pool(root: str | os.PathLike, category_ids: Sequence[int],
                        per_category: int | Sequence[int], size_range: tuple[int, int] = (24, 96),
                        seed: int = 0) -> Path:
    """Write a pool of random RGBA crops (filled ellipses/polygons with soft edges) and its index.

    ``per_category`` is one count for all categories or one per category; crop sides are uniform in
    ``size_range`` pixels. Crops go to ``root/images/<category id>/<n>.png`` (BGRA); returns the path
    of ``root/pool_index.npz``. Deterministic for a given ``seed``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    counts = [per_category] * len(category_ids) if isinstance(per_category, int) else list(per_category)
    records = []
    for cat, count in zip(category_ids, counts):
        folder = root / 'images' / str(cat)
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(count):
            height, width = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
            crop = random_rgba_shape(rng, height, width)
            path = folder / f'{n}.png'
            if not cv2.imwrite(str(path), crop):
                raise OSError(f'could not write {path}')
            records.append(dict(category_id=int(cat), path=path.relative_to(root).as_posix(), width=width,
                                height=height, area=float((crop[..., 3] > 128).mean()), score=25.0))
    return PoolIndex.from_records(records, root=root, info=dict(synthetic=True, seed=seed)).save(
        root / INDEX_FILENAME)


def random_rgba_shape(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A BGRA uint8 crop: textured colour inside a random ellipse or polygon, soft alpha edge, 0 outside."""
    colour = rng.integers(30, 256, size=3)
    noise = rng.integers(-25, 26, size=(height, width, 1))
    bgr = np.clip(colour + noise, 0, 255).astype(np.uint8)
    alpha = np.zeros((height, width), dtype=np.uint8)
    if rng.random() < 0.5:
        cv2.ellipse(alpha, (width // 2, height // 2), (max(width // 2 - 1, 1), max(height // 2 - 1, 1)),
                    0, 0, 360, 255, thickness=-1)
    else:
        points = rng.random((int(rng.integers(3, 8)), 2)) * [width - 1, height - 1]
        cv2.fillPoly(alpha, [cv2.convexHull(points.astype(np.int32))], 255)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    return np.dstack([bgr, alpha])


def make_paths_only_index(path: str | os.PathLike, size: int, num_categories: int = 1203,
                          seed: int = 0) -> Path:
    """Write a paper-scale index of ``size`` instances whose crop files do not exist (for load-time and
    memory measurements; open it with ``check_files=0``). Reused when ``path`` already holds ``size``
    rows. Paths look like X-Paste's (``LVIS_gen_FG_<k>/category_<id>/<n>.png``)."""
    path = Path(path)
    if path.is_file() and len(PoolIndex.load(path)) == size:
        return path
    rng = np.random.default_rng(seed)
    cats = np.sort(rng.integers(1, num_categories + 1, size)).astype(np.int32)
    names = [f'LVIS_gen_FG_{k % 12 + 2}/category_{c:04d}/{k:07d}.png'.encode() for k, c in enumerate(cats)]
    offsets = np.zeros(size + 1, np.int64)
    np.cumsum([len(n) for n in names], out=offsets[1:])
    blob = np.frombuffer(b''.join(names), np.uint8)
    index = PoolIndex(category_id=cats, path_offsets=offsets, path_blob=blob, source=np.zeros(size, np.uint8),
                      segmenter=np.zeros(size, np.uint8),
                      score=rng.uniform(21, 30, size).astype(np.float32),
                      area=rng.uniform(0.05, 0.95, size).astype(np.float32),
                      width=rng.integers(64, 512, size).astype(np.int32),
                      height=rng.integers(64, 512, size).astype(np.int32), segmenters=('u2net',),
                      info=dict(synthetic=True), root=path.parent)
    index.save(path)
    return path
