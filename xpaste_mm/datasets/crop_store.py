"""Crop levels: every pool crop also stored at reduced sizes, as raw BGRA in one memory-mapped file.

Pasting shrinks most crops to a small fraction of their stored size, so decoding the full PNG is most
of a paste's cost. Next to ``<pool>/pool_index.npz`` this module writes

- ``pool_index.levels.bin``: raw BGRA uint8 pixels (row-major, no header), crop after crop;
- ``pool_index.levels.npz``: per index row ``full_size`` (w, h of the original crop; 0 = unreadable),
  per row and level ``level_size`` (w, h) and ``level_offset`` (byte offset in the ``.bin``, -1 = not
  stored), and ``meta`` (format version, level sides, a fingerprint of the index rows).

Level ``k`` holds the crop shrunk (``INTER_AREA``) so that its longer side is ``levels[k]`` pixels, for
every level below the crop's longer side; the first level at or above it holds the crop at full size
instead (so a small crop is never decoded from PNG). A paste reads the smallest stored copy at least
as large as its target size (:meth:`CropLevels.select`), and decodes the PNG only for targets larger
than every level. Chosen by measurement (``tools/analysis_tools/benchmark_paste.py --codecs``): a raw
copy costs no decoding at all (0.04 ms per crop read + resize), where PNG, WebP-lossless and zlib-1
decoding cost 0.3-1.1 ms per crop of 48-256 px.

Disk cost: about ``4 * w * h`` bytes per crop for crops up to the largest level (plus a third for the
smaller levels), ``4 * 4/3 * levels[-1]^2`` at most for larger ones (10,000 crops of 48-256 px: 1.3 GiB
next to 0.6 GiB of PNG); ``python -m xpaste_mm.datasets.crop_store`` prints it.
Old pools without these files keep working (PNG decoding); the index and PNG crops are unchanged, so
the X-Paste JSON export is unaffected.

Writing them is resumable: an unfinished run keeps ``pool_index.levels.partial.{json,rows,bin}``
(header, finished row records, pixels; checkpointed every :data:`CHECKPOINT_S` seconds), and the next
run for the same index rows and levels continues after the last checkpoint.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path

import cv2
import numpy as np
from mmengine.logging import print_log
from tqdm import tqdm

from ..utils.io import atomic_write
from .pool_index import PoolFormatError, PoolIndex, _mmap_npz

LEVELS_VERSION = 1


class CropLevelsBusyError(RuntimeError):
    """Another process is writing the crop levels of the same index."""

DEFAULT_LEVELS = (32, 64, 128, 256)


def levels_paths(index_path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<stem>.levels.npz, <stem>.levels.bin)`` next to the index file."""
    index_path = Path(index_path)
    stem = index_path.with_suffix('')
    return stem.with_name(stem.name + '.levels.npz'), stem.with_name(stem.name + '.levels.bin')


def index_fingerprint(index: PoolIndex) -> str:
    """Identifies the rows of an index (count, categories, path lengths), cheaply."""
    crc = zlib.crc32(np.ascontiguousarray(index.category_id, dtype=np.int32).tobytes())
    crc = zlib.crc32(np.ascontiguousarray(index.path_offsets, dtype=np.int64).tobytes(), crc)
    return f'{len(index)}-{crc:08x}'


@dataclass
class CropLevels:
    """Memory-mapped crop levels of one index (see the module docstring)."""

    full_size: np.ndarray
    level_size: np.ndarray
    level_offset: np.ndarray
    levels: tuple[int, ...]
    blob: np.ndarray
    path: Path

    @classmethod
    def open(cls, index_path: str | os.PathLike, index: PoolIndex | None = None) -> CropLevels | None:
        """The levels written for ``index_path``, or ``None`` when there are none. Levels that do not
        match the index (written for other rows) are ignored with a warning."""
        meta_path, blob_path = levels_paths(index_path)
        if not meta_path.is_file() or not blob_path.is_file():
            return None
        try:
            arrays = _mmap_npz(meta_path)
            meta = json.loads(bytes(arrays['meta']).decode('utf-8'))
        except (OSError, ValueError, KeyError) as exc:
            print_log(f'{meta_path}: unreadable crop levels ({exc}); decoding the PNG crops instead',
                      logger='current', level=logging.WARNING)
            return None
        problem = None
        if meta.get('version') != LEVELS_VERSION:
            problem = f'format version {meta.get("version")} is not {LEVELS_VERSION}'
        elif blob_path.stat().st_size != meta.get('blob_bytes'):
            problem = f'{blob_path.name} has {blob_path.stat().st_size} bytes, not {meta.get("blob_bytes")}'
        elif index is not None and meta.get('fingerprint') != index_fingerprint(index):
            problem = 'they were written for other index rows (rebuild them after changing the index)'
        if problem:
            print_log(f'{meta_path}: crop levels ignored: {problem}; decoding the PNG crops instead. '
                      f'Rebuild with: python -m xpaste_mm.datasets.crop_store {index_path}',
                      logger='current', level=logging.WARNING)
            return None
        blob = (np.memmap(blob_path, dtype=np.uint8, mode='r') if meta['blob_bytes']
                else np.zeros(0, np.uint8))
        # Plain ndarray views of the maps: slicing a np.memmap costs a Python-level finalizer per slice.
        return cls(full_size=np.asarray(arrays['full_size']), level_size=np.asarray(arrays['level_size']),
                   level_offset=np.asarray(arrays['level_offset']), levels=tuple(meta['levels']),
                   blob=np.asarray(blob), path=meta_path)

    def size(self, row: int) -> tuple[int, int]:
        """``(width, height)`` of the original crop; ``(0, 0)`` when it was unreadable."""
        width, height = self.full_size[row].tolist()
        return width, height

    def select(self, row: int, width: int, height: int) -> np.ndarray | None:
        """The smallest stored copy of ``row`` at least ``width`` x ``height`` (or the stored full-size
        copy), as a read-only BGRA view of the file; ``None`` when only the PNG is large enough."""
        full_w, full_h = self.full_size[row].tolist()
        for offset, (w, h) in zip(self.level_offset[row].tolist(), self.level_size[row].tolist()):
            if offset < 0:
                break
            if (w >= width and h >= height) or (w == full_w and h == full_h):
                return self.blob[offset:offset + w * h * 4].reshape(h, w, 4)
        return None


def level_sizes(width: int, height: int, levels: Sequence[int]) -> list[tuple[int, int]]:
    """Stored ``(w, h)`` per level of a ``width`` x ``height`` crop; the full-size copy is last."""
    longest = max(width, height)
    sizes = []
    for side in levels:
        if side >= longest:
            sizes.append((width, height))
            break
        sizes.append((max(1, round(width * side / longest)), max(1, round(height * side / longest))))
    return sizes


def _decode(path: str) -> np.ndarray | None:
    from .instance_pool import _decode_bgra
    try:
        return _decode_bgra(path)
    except (OSError, ValueError):
        return None


def _make_levels(task: tuple[str, tuple[int, ...]]) -> tuple[tuple[int, int], list[np.ndarray]]:
    """Decode one crop and shrink it to every level (worker function)."""
    path, levels = task
    crop = _decode(path)
    if crop is None:
        return (0, 0), []
    height, width = crop.shape[:2]
    images = []
    for w, h in level_sizes(width, height, levels):
        images.append(crop if (w, h) == (width, height) else
                      cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA))
    return (width, height), images


#: Seconds between checkpoints of :func:`write_crop_levels` (what a killed run keeps).
CHECKPOINT_S = 10.0


def partial_paths(index_path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """``(<stem>.levels.partial.json, .rows, .bin)``: the header, finished row records and pixels
    of an unfinished :func:`write_crop_levels` run."""
    meta_path, _ = levels_paths(index_path)
    stem = str(meta_path)[:-len('.npz')]
    return Path(f'{stem}.partial.json'), Path(f'{stem}.partial.rows'), Path(f'{stem}.partial.bin')


class _Journal:
    """Finished rows of a levels write, kept across runs.

    Pixels are appended to the partial ``.bin``; each row's record (``full w, h``, the ``.bin`` size
    after the row, then ``w, h, offset`` per level; int64) waits in memory until a checkpoint, which
    first makes the pixels durable (fsync), then appends the records and makes them durable. So every
    record on disk describes pixels on disk, and a killed run resumes after its last checkpoint. An
    exclusive ``flock`` on the index file keeps a second writer of the same index out.
    """

    def __init__(self, index_path: Path, header: dict, num_levels: int):
        self.header_path, self.rows_path, self.blob_path = partial_paths(index_path)
        self.header, self.num_levels, self.width = header, num_levels, 3 + 3 * num_levels
        self.pending: list[list[int]] = []

    def open(self, index_path: Path) -> np.ndarray:
        """Start or resume; the records of the rows finished before (K, width) int64."""
        self.lock = open(index_path, 'rb')
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock.close()
            raise CropLevelsBusyError(f'another process is writing the crop levels of {index_path}; wait for '
                                      'it to finish') from None
        records = self._saved_records()
        if len(records) == 0:
            for path in (self.rows_path, self.blob_path):
                path.unlink(missing_ok=True)
            atomic_write(self.header_path, lambda tmp: Path(tmp).write_text(json.dumps(self.header)))
        self.rows = open(self.rows_path, 'ab')
        self.rows.truncate(len(records) * self.width * 8)  # a record cut short by the kill
        self.blob = open(self.blob_path, 'ab')
        end = int(records[-1, 2]) if len(records) else 0
        self.blob.truncate(end)  # pixels written after the last checkpoint
        self.blob.seek(end)
        return records

    def _saved_records(self) -> np.ndarray:
        empty = np.zeros((0, self.width), np.int64)
        try:
            if json.loads(self.header_path.read_text()) != self.header:
                print_log(f'{self.header_path}: an unfinished crop-level write for other levels or index '
                          'rows; starting over', logger='current', level=logging.WARNING)
                return empty
            data = self.rows_path.read_bytes()
            blob_size = self.blob_path.stat().st_size
        except (OSError, ValueError):
            return empty
        count = len(data) // (8 * self.width)
        records = np.frombuffer(data[:count * 8 * self.width], np.int64).reshape(count, self.width)
        return records[:int(np.searchsorted(records[:, 2], blob_size, side='right'))]

    def add(self, size: tuple[int, int], images: list[np.ndarray]) -> list[int]:
        """Append one row's pixels; its record (returned) is saved at the next checkpoint."""
        record = [size[0], size[1], 0] + [0, 0, -1] * self.num_levels
        for k, image in enumerate(images):
            offset = self.blob.tell()
            self.blob.write(np.ascontiguousarray(image).tobytes())
            record[3 + 3 * k:6 + 3 * k] = [image.shape[1], image.shape[0], offset]
        record[2] = self.blob.tell()
        self.pending.append(record)
        return record

    def checkpoint(self) -> None:
        self.blob.flush()
        os.fsync(self.blob.fileno())
        if self.pending:
            self.rows.write(np.asarray(self.pending, np.int64).tobytes())
            self.rows.flush()
            os.fsync(self.rows.fileno())
            self.pending = []

    def close(self) -> None:
        self.blob.close()
        self.rows.close()
        self.lock.close()  # releases the flock

    def discard(self) -> None:
        for path in (self.header_path, self.rows_path):
            path.unlink(missing_ok=True)


def write_crop_levels(index_path: str | os.PathLike, levels: Sequence[int] = DEFAULT_LEVELS,
                      workers: int = 1, progress: bool = True, context: BaseContext | None = None) -> Path:
    """Write the crop levels of the index at ``index_path`` (see the module docstring).

    Every crop is decoded once (``workers`` processes of ``context``, default ``fork``); unreadable
    crops are recorded as such. A killed run resumes after its last checkpoint (every
    :data:`CHECKPOINT_S` seconds, :func:`partial_paths`). The finished ``.bin`` is renamed into place,
    then the ``.npz`` written atomically; the ``.npz`` names the ``.bin`` size it was written with, so
    a reader between the two ignores the levels. Returns the ``.npz`` path.
    """
    levels = tuple(sorted(int(s) for s in levels))
    if not levels or levels[0] < 1:
        raise ValueError(f'crop levels must be positive pixel sizes, got {levels}')
    index_path = Path(index_path)
    index = PoolIndex.load(index_path)
    meta_path, blob_path = levels_paths(index_path)
    num = len(index)
    header = dict(version=LEVELS_VERSION, levels=list(levels), fingerprint=index_fingerprint(index))
    journal = _Journal(index_path, header, len(levels))
    records = np.zeros((num, journal.width), np.int64)
    done = journal.open(index_path)
    records[:len(done)] = done
    tasks = ((_crop_path(index, row), levels) for row in range(len(done), num))
    pool = None
    if workers > 1 and (context is not None or os.name != 'nt'):
        pool = (context or get_context('fork')).Pool(workers)
    results = pool.imap(_make_levels, tasks, chunksize=16) if pool else map(_make_levels, tasks)
    try:
        last = time.monotonic()
        for row, (size, images) in enumerate(tqdm(results, total=num, initial=len(done), desc='crop levels',
                                                  disable=not progress, mininterval=2), start=len(done)):
            records[row] = journal.add(size, images)
            if time.monotonic() - last >= CHECKPOINT_S:
                journal.checkpoint()
                last = time.monotonic()
        journal.checkpoint()
    finally:
        if pool:
            pool.terminate()
            pool.join()
        journal.close()
    os.replace(journal.blob_path, blob_path)
    full_size = records[:, :2].astype(np.int32)
    per_level = records[:, 3:].reshape(num, len(levels), 3)
    meta = dict(header, blob_bytes=blob_path.stat().st_size,
                unreadable=int((full_size == 0).all(axis=1).sum()))
    arrays = dict(full_size=full_size, level_size=per_level[:, :, :2].astype(np.int32),
                  level_offset=per_level[:, :, 2].copy(),
                  meta=np.frombuffer(json.dumps(meta).encode('utf-8'), dtype=np.uint8))
    atomic_write(meta_path, lambda tmp: np.savez(tmp, **arrays))
    journal.discard()
    return meta_path


def _crop_path(index: PoolIndex, row: int) -> str:
    relative = index.relpath(row)
    return relative if os.path.isabs(relative) else os.path.join(str(index.root), relative)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xpaste_mm.datasets.crop_store POOL_INDEX [--levels 32 64 128 256] [--workers N]``."""
    import argparse
    parser = argparse.ArgumentParser(description='Write the crop levels (fast pasting) of a pool index.')
    parser.add_argument('index', help='pool_index.npz')
    parser.add_argument('--levels', type=int, nargs='+', default=list(DEFAULT_LEVELS),
                        help='longer sides in pixels of the stored copies')
    parser.add_argument('--workers', type=int, default=1)
    args = parser.parse_args(argv)
    try:
        meta_path = write_crop_levels(args.index, args.levels, args.workers)
    except (FileNotFoundError, PoolFormatError, ValueError, CropLevelsBusyError) as exc:
        print(f'crop_store: error: {exc}')
        return 2
    _, blob_path = levels_paths(args.index)
    print(f'wrote {meta_path} and {blob_path} ({blob_path.stat().st_size / 2**20:.1f} MiB)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
