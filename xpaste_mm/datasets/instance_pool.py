"""The instance pool as the paste transform sees it: category -> label mapping, sampling, crop reading.

:class:`InstancePool` wraps a :class:`~xpaste_mm.datasets.PoolIndex` (memory-mapped columns plus one
UTF-8 path table, never a Python object per instance), so every dataloader worker shares the same
pages and nothing grows on read. Crops are decoded on demand into a per-process LRU cache bounded in
bytes (:class:`CropCache`); a missing or corrupt crop is skipped, counted and warned about once. When
the pool has crop levels (:mod:`.crop_store`), :meth:`InstancePool.open_crops` reads each crop from
the smallest stored copy that is large enough for its paste, without decoding.

Category ids in the pool are DATASET category ids (LVIS: 1-based); the 0-based training label of a
category is its position among the sorted dataset category ids (:mod:`xpaste_mm.categories`, what
mmdet's ``LVISV1Dataset`` and ``CocoDataset`` do). Crops are returned as BGRA uint8 (OpenCV channel
order, alpha last).
"""
from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from mmengine.logging import print_log

from .. import categories
from .crop_store import CropLevels
from .pool_index import PoolFormatError, PoolIndex

SAMPLE_MODES = ('cas_random', 'random', 'cats_random')
_MAX_EXAMPLES = 5


@dataclass
class PoolCheck:
    """What :class:`InstancePool` found at start-up (counts, plus a few examples of each problem)."""

    num_instances: int = 0
    num_usable: int = 0
    num_categories: int = 0
    unknown_category_rows: int = 0
    unknown_category_ids: list[int] = field(default_factory=list)
    files_checked: int = 0
    files_missing: int = 0
    missing_examples: list[str] = field(default_factory=list)


class CropCache:
    """Least-recently-used cache of decoded crops, bounded by the total bytes of the arrays."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = max(int(capacity_bytes), 0)
        self.used_bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: int) -> np.ndarray | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item

    def put(self, key: int, array: np.ndarray) -> None:
        """Store ``array`` (evicting the least recently used); arrays above the capacity are not kept."""
        if array.nbytes > self.capacity_bytes or key in self._items:
            return
        while self.used_bytes + array.nbytes > self.capacity_bytes:
            _, evicted = self._items.popitem(last=False)
            self.used_bytes -= evicted.nbytes
        self._items[key] = array
        self.used_bytes += array.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.used_bytes = 0


class PoolCrop:
    """One pool crop of known size (``width`` x ``height`` pixels, the original crop's) whose pixels are
    read at the size a paste needs (:meth:`pixels`)."""

    __slots__ = ('pool', 'row', 'width', 'height', '_full')

    def __init__(self, pool: InstancePool, row: int, width: int, height: int,
                 full: np.ndarray | None = None) -> None:
        self.pool, self.row, self.width, self.height, self._full = pool, row, width, height, full

    def pixels(self, width: int, height: int) -> np.ndarray | None:
        """Read-only BGRA uint8 pixels to be resized to ``width`` x ``height``: the smallest stored
        copy at least that large, else the full-size crop; ``None`` when unreadable (counted)."""
        if self._full is not None:
            return self._full
        if self.pool.levels is not None:
            level = self.pool.levels.select(self.row, width, height)
            if level is not None:
                return level
        return self.pool.read_crop(self.row)


class InstancePool:
    """Pool instances usable for one dataset, with class-balanced sampling and cached crop reading.

    Args:
        index: the pool index (rows sorted by category id).
        category_ids: every category id of the training dataset; label ``i`` is ``sorted(ids)[i]``.
            ``None`` assumes the LVIS convention ``label = category_id - 1``.
        category_weights: optional ``{category_id: weight}`` multiplying the chance of drawing a
            category (all sampling modes); unlisted categories weigh 1, weight 0 disables one.
        cache_size_mb: capacity of the per-process decoded-crop cache in MiB (0 disables it).
        check_files: how many crop files to test for existence at start-up (evenly spread over the
            pool), or ``'all'``; 0 skips the check.
        source: the file the index came from (used in messages and to re-open it after pickling).

    Rows whose category is not a dataset category are excluded from sampling and reported.
    """

    def __init__(self, index: PoolIndex, category_ids: Sequence[int] | None = None, *,
                 category_weights: Mapping[int, float] | None = None, cache_size_mb: float = 128,
                 check_files: int | str = 256, source: str | os.PathLike | None = None) -> None:
        self.index = index
        self.source = str(source) if source is not None else str(index.root)
        self._root = str(index.root)
        self.cache = CropCache(int(cache_size_mb * 2**20))
        self.failed_rows: set[int] = set()
        self.skipped_reads = 0
        self._mmap_file: str | None = None
        self.levels: CropLevels | None = None
        self.check = PoolCheck(num_instances=len(index))
        self._build_categories(category_ids)
        self.set_category_weights(category_weights)
        if check_files:
            self._check_files(check_files)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_file(cls, pool_file: str | os.PathLike, category_ids: Sequence[int] | None = None,
                  **kwargs) -> InstancePool:
        """Open our ``pool_index.npz`` (memory-mapped) or an X-Paste pool ``.json``.

        For X-Paste JSON, key ``"<label>"`` becomes category ``sorted(category_ids)[label]``
        (``label + 1`` without ``category_ids``).
        """
        path = Path(pool_file)
        if not path.is_file():
            raise FileNotFoundError(f'pool file {path} does not exist (expected a pool_index.npz or an '
                                    'X-Paste pool .json)')
        sorted_ids = categories.sorted_ids(category_ids) if category_ids is not None else None
        if path.suffix.lower() == '.json':
            start = time.perf_counter()
            index = PoolIndex.from_xpaste_json(path, category_ids=sorted_ids)
            _advise_npz_once(path, time.perf_counter() - start, len(index))
            return cls(index, sorted_ids, source=path, **kwargs)
        pool = cls(PoolIndex.load(path, mmap=True), sorted_ids, source=path, **kwargs)
        pool._mmap_file = str(path.resolve())
        pool.levels = CropLevels.open(path, pool.index)
        return pool

    def _build_categories(self, category_ids: Sequence[int] | None) -> None:
        ranges = self.index.category_ranges()
        if category_ids is None:
            label_of = {cat: cat - 1 for cat in ranges if cat >= 1}
        else:
            label_of = categories.label_map(category_ids)
        usable = [(cat, label_of[cat], start, stop) for cat, (start, stop) in ranges.items()
                  if cat in label_of]
        unknown = {cat: stop - start for cat, (start, stop) in ranges.items() if cat not in label_of}
        self.category_ids = np.array([u[0] for u in usable], dtype=np.int64)
        self.labels = np.array([u[1] for u in usable], dtype=np.int64)
        self.starts = np.array([u[2] for u in usable], dtype=np.int64)
        self.counts = np.array([u[3] - u[2] for u in usable], dtype=np.int64)
        num_labels = max(label_of.values(), default=-1) + 1
        self.num_labels = num_labels if category_ids is not None else None
        self._label_to_pos = np.full(max(num_labels, 1), -1, dtype=np.int64)
        self._label_to_pos[self.labels] = np.arange(len(self.labels))
        self.check.num_categories = len(usable)
        self.check.num_usable = int(self.counts.sum())
        self.check.unknown_category_rows = int(sum(unknown.values()))
        self.check.unknown_category_ids = sorted(unknown)[:_MAX_EXAMPLES]
        if unknown:
            print_log(f'instance pool {self.source}: {self.check.unknown_category_rows} instance(s) of '
                      f'{len(unknown)} category id(s) that are not dataset categories are ignored '
                      f'(e.g. ids {self.check.unknown_category_ids})', logger='current',
                      level=logging.WARNING)
        if not usable:
            raise PoolFormatError(f'instance pool {self.source}: none of its {len(self.index)} instances '
                                  'belongs to a dataset category (check category_ids / ann_file and '
                                  'that the pool was built for this dataset)')

    def set_category_weights(self, weights: Mapping[int, float] | None) -> None:
        """Set ``{category_id: weight}`` multipliers of each category's sampling chance."""
        self.weights = np.ones(len(self.category_ids), dtype=np.float64)
        for cat, weight in (weights or {}).items():
            if weight < 0:
                raise ValueError(f'category weight of id {cat} is negative ({weight})')
            self.weights[self.category_ids == int(cat)] = float(weight)
        if not (self.weights > 0).any():
            raise ValueError('category_weights leave no pool category with a positive weight')
        self._cdf = {'cas_random': _cdf(self.weights), 'random': _cdf(self.weights * self.counts)}

    def _check_files(self, check_files: int | str) -> None:
        checked, missing = self.index.check_files(check_files)
        self.check.files_checked = checked
        self.check.files_missing = len(missing)
        self.check.missing_examples = missing[:_MAX_EXAMPLES]
        if missing and len(missing) == checked:
            raise FileNotFoundError(f'instance pool {self.source}: none of the {checked} crop files '
                                    f'checked exists (e.g. {missing[0]}); was the pool folder moved?')
        if missing:
            print_log(f'instance pool {self.source}: {len(missing)} of {checked} checked crop files are '
                      f'missing (e.g. {self.check.missing_examples}); they will be skipped and counted',
                      logger='current', level=logging.WARNING)

    # ------------------------------------------------------------------ sampling
    def label_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Dataset labels of pool rows (rows must be usable ones, e.g. from :meth:`sample`)."""
        pos = np.searchsorted(self.starts, rows, side='right') - 1
        return self.labels[pos]

    def category_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Dataset category ids of pool rows."""
        return np.asarray(self.index.category_id[rows], dtype=np.int64)

    def sample(self, rng: np.random.Generator, count: int, mode: str = 'cas_random',
               image_labels: np.ndarray | None = None) -> np.ndarray:
        """Draw ``count`` pool rows with replacement.

        ``cas_random``: category uniform (times its weight) among categories with instances, then an
        instance uniform within it. ``random``: instances uniform over the pool (times category
        weight). ``cats_random``: like ``cas_random`` among the categories of ``image_labels`` that
        have pool instances, falling back to all categories when there are none.
        """
        if mode not in SAMPLE_MODES:
            raise ValueError(f'sample_mode {mode!r} is not one of {SAMPLE_MODES}')
        if mode == 'cats_random':
            positions = self._positions_of_labels(image_labels)
            if len(positions):
                cdf = _cdf(self.weights[positions])
                cats = positions[np.searchsorted(cdf, rng.random(count), side='right')]
            else:
                cats = np.searchsorted(self._cdf['cas_random'], rng.random(count), side='right')
        else:
            cats = np.searchsorted(self._cdf[mode], rng.random(count), side='right')
        offsets = (rng.random(count) * self.counts[cats]).astype(np.int64)
        return self.starts[cats] + offsets

    def _positions_of_labels(self, labels: np.ndarray | None) -> np.ndarray:
        if labels is None or len(labels) == 0:
            return np.zeros(0, dtype=np.int64)
        labels = np.unique(np.asarray(labels, dtype=np.int64))
        labels = labels[(labels >= 0) & (labels < len(self._label_to_pos))]
        positions = self._label_to_pos[labels]
        return positions[(positions >= 0) & (self.weights[np.maximum(positions, 0)] > 0)]

    # ------------------------------------------------------------------ crops
    def crop_path(self, row: int) -> str:
        """Absolute path of a row's crop (plain string: pathlib interns every component, which
        grows a worker's private memory by tens of MB over a large pool)."""
        relative = self.index.relpath(int(row))
        return relative if os.path.isabs(relative) else os.path.join(self._root, relative)

    def open_crops(self, rows: Sequence[int]) -> list[PoolCrop | None]:
        """The crops of ``rows`` with their original sizes; ``None`` for unreadable ones (counted).
        Without crop levels each crop is decoded (and cached) here; with them, nothing is read until
        :meth:`PoolCrop.pixels`."""
        crops: list[PoolCrop | None] = []
        for row in map(int, rows):
            if self.levels is None:
                crop = self.read_crop(row)
                crops.append(None if crop is None else
                             PoolCrop(self, row, crop.shape[1], crop.shape[0], crop))
                continue
            width, height = self.levels.size(row)
            if width == 0:
                self._skip(row, self.crop_path(row), 'unreadable when the crop levels were written')
                crops.append(None)
            else:
                crops.append(PoolCrop(self, row, width, height))
        return crops

    def _skip(self, row: int, path: str, reason: str | Exception) -> None:
        """Count a skipped paste; warn once per unreadable crop file."""
        self.skipped_reads += 1
        if row in self.failed_rows:
            return
        self.failed_rows.add(row)
        print_log(f'instance pool: skipping crop {path}: {reason} ({len(self.failed_rows)} unreadable '
                  f'crop file(s), {self.skipped_reads} skipped paste(s) so far in process '
                  f'{os.getpid()})', logger='current', level=logging.WARNING)

    def read_crop(self, row: int) -> np.ndarray | None:
        """The decoded BGRA uint8 crop of ``row`` (read-only, possibly cached), or ``None`` when the
        file is missing or unreadable (warned once per file, counted in :attr:`skipped_reads`)."""
        crop = self.cache.get(row)
        if crop is not None:
            return crop
        if row in self.failed_rows:
            self.skipped_reads += 1
            return None
        path = self.crop_path(row)
        try:
            crop = _decode_bgra(path)
        except (OSError, ValueError) as exc:
            self._skip(row, path, exc)
            return None
        crop.flags.writeable = False
        self.cache.put(row, crop)
        return crop

    # ------------------------------------------------------------------ pickling (spawned workers)
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['cache'] = CropCache(self.cache.capacity_bytes)
        if self._mmap_file is not None:
            state['index'] = None  # re-mapped from the file instead of copying the columns
            state['levels'] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.index is None:
            self.index = PoolIndex.load(self._mmap_file, mmap=True)
            self.levels = CropLevels.open(self._mmap_file)


_ADVISED: set[str] = set()


def _advise_npz_once(path: Path, seconds: float, num: int) -> None:
    """Say once per process and file that a converted index starts up much faster."""
    if str(path) in _ADVISED:
        return
    _ADVISED.add(str(path))
    print_log(f'instance pool {path}: X-Paste JSON pool read in {seconds:.2f} s ({num} instances) in this '
              'process. Convert it once with `xpaste-pool import-xpaste --json '
              f'{path} --out <pool>/pool_index.npz` and use the .npz as pool_file: it is memory-mapped '
              '(start-up in milliseconds, ~50-100x faster; shared by dataloader workers) and can carry '
              'crop levels '
              '(`python -m xpaste_mm.datasets.crop_store <pool>/pool_index.npz`) for much faster '
              'pasting', logger='current', level=logging.INFO)


def _cdf(weights: np.ndarray) -> np.ndarray:
    """Normalised cumulative weights (last entry exactly 1) for inverse-CDF sampling."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


def _decode_bgra(path: str) -> np.ndarray:
    """Read an RGBA PNG (or any 4-channel image) as BGRA uint8; raises ``OSError``/``ValueError``."""
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError('not a decodable image')
    if image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f'expected an RGBA crop (4 channels), got shape {image.shape}')
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ValueError(f'unsupported pixel type {image.dtype}')
    if min(image.shape[:2]) == 0:
        raise ValueError('empty image')
    return image
