"""The instance-pool index: one ``.npz`` file listing every pooled RGBA crop.

Written by ``pool_builder`` and read by :class:`~xpaste_mm.datasets.InstancePool`. Columns (one row
per instance, rows sorted by category id):

==================  ========  ==============================================================
``category_id``     int32     dataset category id as in the annotation file (LVIS: 1-based)
``path_offsets``    int64     N+1 offsets into ``path_blob``
``path_blob``       uint8     UTF-8 paths, relative to the index file's folder unless absolute
``source``          uint8     index into :data:`SOURCES` (generated / retrieved / own)
``segmenter``       uint8     index into the ``segmenters`` list stored in ``meta``
``score``           float32   CLIP score (100 x cosine) of the chosen mask
``area``            float32   mask area as a fraction of the source image
``width``/``height`` int32    crop size in pixels
``meta``            uint8     UTF-8 JSON: format version, segmenter names, free-form info
==================  ========  ==============================================================

The file is an uncompressed ``np.savez`` archive, so ``np.load`` reads it anywhere, and
:meth:`PoolIndex.load` memory-maps every column: loading a 1.4M-instance index costs milliseconds
and dataloader workers share the pages instead of copying Python objects.
"""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..utils.io import atomic_write, atomic_write_json

FORMAT_VERSION = 1
INDEX_FILENAME = 'pool_index.npz'
SOURCES = ('generated', 'retrieved', 'own')
_COLUMNS = ('category_id', 'path_offsets', 'path_blob', 'source', 'segmenter', 'score', 'area',
            'width', 'height', 'meta')


class PoolFormatError(ValueError):
    """A pool index or X-Paste pool JSON is malformed (the message names the file and field)."""


@dataclass
class PoolIndex:
    """Column arrays of a pool index; ``root`` is the folder relative paths are resolved against."""

    category_id: np.ndarray
    path_offsets: np.ndarray
    path_blob: np.ndarray
    source: np.ndarray
    segmenter: np.ndarray
    score: np.ndarray
    area: np.ndarray
    width: np.ndarray
    height: np.ndarray
    segmenters: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)
    root: Path = field(default_factory=Path)

    def __len__(self) -> int:
        return int(self.category_id.shape[0])

    def relpath(self, index: int) -> str:
        """The path of instance ``index`` as stored (relative to ``root`` unless absolute)."""
        start, end = int(self.path_offsets[index]), int(self.path_offsets[index + 1])
        return bytes(self.path_blob[start:end]).decode('utf-8')

    def path(self, index: int) -> Path:
        """Absolute path of instance ``index``'s RGBA crop."""
        return self.root / self.relpath(index)

    def category_ranges(self) -> dict[int, tuple[int, int]]:
        """``{category_id: (start, stop)}`` row ranges (rows are sorted by category id)."""
        cats = np.asarray(self.category_id)
        if len(cats) == 0:
            return {}
        starts = np.flatnonzero(np.r_[True, cats[1:] != cats[:-1]])
        stops = np.r_[starts[1:], len(cats)]
        return {int(cats[s]): (int(s), int(e)) for s, e in zip(starts, stops)}

    def records(self) -> list[dict]:
        """Rows as dicts (for inspection and tests; not for hot paths)."""
        return [dict(category_id=int(self.category_id[i]), path=self.relpath(i),
                     source=SOURCES[int(self.source[i])],
                     segmenter=self.segmenters[int(self.segmenter[i])] if self.segmenters else '',
                     score=float(self.score[i]), area=float(self.area[i]),
                     width=int(self.width[i]), height=int(self.height[i])) for i in range(len(self))]

    # ------------------------------------------------------------------ building
    @classmethod
    def from_records(cls, records: Iterable[Mapping], root: str | os.PathLike,
                     info: dict | None = None) -> PoolIndex:
        """Build an index from dicts with keys ``category_id`` and ``path`` (required) and
        ``source``, ``segmenter``, ``score``, ``area``, ``width``, ``height`` (optional).

        Paths under ``root`` are stored relative to it. Rows are sorted by (category id, path).
        """
        root = Path(root).resolve()
        root_prefix = root.as_posix().rstrip('/') + '/'
        rows = []
        for n, rec in enumerate(records):
            if 'category_id' not in rec or 'path' not in rec:
                raise PoolFormatError(f'pool record {n} lacks "category_id" or "path": {dict(rec)}')
            source = rec.get('source', 'generated')
            if source not in SOURCES:
                raise PoolFormatError(f'pool record {n}: source {source!r} is not one of {SOURCES}')
            # String operations only: resolving a million paths one by one would take minutes.
            path = os.path.normpath(os.fspath(rec['path'])).replace(os.sep, '/')
            if path.startswith(root_prefix):
                path = path[len(root_prefix):]
            rows.append((int(rec['category_id']), path, SOURCES.index(source),
                         str(rec.get('segmenter', '')), float(rec.get('score', np.nan)),
                         float(rec.get('area', np.nan)), int(rec.get('width', 0)),
                         int(rec.get('height', 0))))
        rows.sort(key=lambda r: (r[0], r[1]))
        segmenters = tuple(sorted({r[3] for r in rows}))
        encoded = [r[1].encode('utf-8') for r in rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in encoded], out=offsets[1:])
        return cls(
            category_id=np.array([r[0] for r in rows], dtype=np.int32),
            path_offsets=offsets,
            path_blob=np.frombuffer(b''.join(encoded), dtype=np.uint8).copy(),
            source=np.array([r[2] for r in rows], dtype=np.uint8),
            segmenter=np.array([segmenters.index(r[3]) for r in rows], dtype=np.uint8),
            score=np.array([r[4] for r in rows], dtype=np.float32),
            area=np.array([r[5] for r in rows], dtype=np.float32),
            width=np.array([r[6] for r in rows], dtype=np.int32),
            height=np.array([r[7] for r in rows], dtype=np.int32),
            segmenters=segmenters, info=dict(info or {}), root=root)

    # ------------------------------------------------------------------ file I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index atomically as an uncompressed ``.npz``; relative paths must be
        relative to ``path``'s folder (they are when ``root`` is that folder)."""
        meta = json.dumps(dict(version=FORMAT_VERSION, segmenters=list(self.segmenters),
                               sources=list(SOURCES), info=self.info), ensure_ascii=False)
        arrays = {name: np.asarray(getattr(self, name)) for name in _COLUMNS if name != 'meta'}
        arrays['meta'] = np.frombuffer(meta.encode('utf-8'), dtype=np.uint8)
        return atomic_write(path, lambda tmp: np.savez(tmp, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> PoolIndex:
        """Read an index; with ``mmap`` every column is a read-only memory map of the file."""
        path = Path(path).resolve()
        if not path.is_file():
            raise FileNotFoundError(f'pool index {path} does not exist')
        try:
            arrays = _mmap_npz(path) if mmap else dict(np.load(path, allow_pickle=False))
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise PoolFormatError(f'pool index {path} is not a readable .npz archive: {exc}') from exc
        missing = [c for c in _COLUMNS if c not in arrays]
        if missing:
            raise PoolFormatError(f'pool index {path} lacks the column(s) {missing}')
        meta = json.loads(bytes(arrays['meta']).decode('utf-8'))
        if meta.get('version') != FORMAT_VERSION:
            raise PoolFormatError(f'pool index {path}: format version {meta.get("version")} is not '
                                  f'{FORMAT_VERSION}')
        n = len(arrays['category_id'])
        if len(arrays['path_offsets']) != n + 1 or any(len(arrays[c]) != n for c in
                                                       ('source', 'segmenter', 'score', 'area',
                                                        'width', 'height')):
            raise PoolFormatError(f'pool index {path}: columns have inconsistent lengths')
        columns = {c: arrays[c] for c in _COLUMNS if c != 'meta'}
        return cls(**columns, segmenters=tuple(meta.get('segmenters', ())), info=meta.get('info', {}),
                   root=path.parent)

    # ------------------------------------------------------------------ X-Paste JSON
    @classmethod
    def from_xpaste_json(cls, json_path: str | os.PathLike,
                         category_ids: Sequence[int] | None = None) -> PoolIndex:
        """Import X-Paste's pool JSON ``{"<0-based label>": ["*<path>", ...]}``.

        ``category_ids[label]`` gives the dataset category id of each label (default: label + 1, the
        LVIS convention). A leading ``*`` (pre-cropped RGBA) is stripped; ``img|mask`` entries are
        rejected because they need the cropping step of ``pool_builder filter`` first. Relative
        paths are resolved against the JSON file's folder.
        """
        json_path = Path(json_path).resolve()
        try:
            with open(json_path, encoding='utf-8') as f:
                pool = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise PoolFormatError(f'X-Paste pool {json_path}: cannot read JSON ({exc})') from exc
        if not isinstance(pool, dict):
            raise PoolFormatError(f'X-Paste pool {json_path}: expected an object keyed by label')
        records = []
        for key, entries in pool.items():
            try:
                label = int(key)
            except ValueError as exc:
                raise PoolFormatError(f'X-Paste pool {json_path}: key {key!r} is not an integer '
                                      'label') from exc
            if category_ids is not None and not 0 <= label < len(category_ids):
                raise PoolFormatError(f'X-Paste pool {json_path}: label {label} is outside the '
                                      f'{len(category_ids)} dataset categories')
            cat_id = category_ids[label] if category_ids is not None else label + 1
            for entry in entries:
                if not isinstance(entry, str) or '|' in entry:
                    raise PoolFormatError(f'X-Paste pool {json_path}: entry {entry!r} under {key!r} is '
                                          'not a pre-cropped RGBA path ("*<path>")')
                path = entry.lstrip('*')
                records.append(dict(category_id=cat_id, path=path if os.path.isabs(path)
                                    else os.path.join(json_path.parent, path), source='generated'))
        return cls.from_records(records, root=json_path.parent, info=dict(imported_from=str(json_path)))

    def to_xpaste_json(self, json_path: str | os.PathLike,
                       category_ids: Sequence[int] | None = None) -> Path:
        """Export as X-Paste's pool JSON (0-based label keys, ``*``-prefixed absolute paths)."""
        label_of = ({int(c): i for i, c in enumerate(category_ids)} if category_ids is not None
                    else None)
        pool: dict[str, list[str]] = {}
        for cat_id, (start, stop) in self.category_ranges().items():
            if label_of is not None and cat_id not in label_of:
                raise PoolFormatError(f'category id {cat_id} of the pool is not among the dataset '
                                      'categories given for export')
            label = label_of[cat_id] if label_of is not None else cat_id - 1
            pool[str(label)] = ['*' + str(self.path(i)) for i in range(start, stop)]
        return atomic_write_json(json_path, pool)


def _mmap_npz(path: Path) -> dict[str, np.ndarray]:
    """Memory-map every member of an uncompressed ``.npz`` (falls back to reading compressed ones)."""
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, 'rb') as raw:
        for member in archive.infolist():
            name = member.filename[:-4] if member.filename.endswith('.npy') else member.filename
            if member.compress_type != zipfile.ZIP_STORED:
                with archive.open(member) as f:
                    arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
                continue
            raw.seek(member.header_offset)
            local_header = raw.read(30)
            name_len = int.from_bytes(local_header[26:28], 'little')
            extra_len = int.from_bytes(local_header[28:30], 'little')
            raw.seek(member.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(raw)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(raw)
            if dtype.hasobject:
                raise ValueError(f'member {name} holds Python objects')
            count = int(np.prod(shape))
            if count == 0:
                arrays[name] = np.zeros(shape, dtype=dtype)
                continue
            arrays[name] = np.memmap(path, dtype=dtype, mode='r', offset=raw.tell(), shape=shape,
                                     order='F' if fortran else 'C')
    return arrays
