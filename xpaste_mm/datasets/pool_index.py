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

    def check_files(self, count: int | str = 256) -> tuple[int, list[str]]:
        """Test ``count`` crop files (evenly spread over the rows; ``'all'``: every one) for existence.
        Returns the number checked and the missing paths."""
        total = len(self)
        if count == 'all':
            rows = np.arange(total)
        else:
            rows = np.unique(np.linspace(0, total - 1, num=min(int(count), total)).astype(np.int64))
        root = str(self.root)
        missing = []
        for row in rows.tolist():
            relative = self.relpath(row)
            path = relative if os.path.isabs(relative) else os.path.join(root, relative)
            if not os.path.isfile(path):
                missing.append(path)
        return len(rows), missing

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
        """Write the index atomically as an uncompressed ``.npz``.

        Relative paths (relative to ``root``) are rewritten relative to ``path``'s folder when that is
        another folder (e.g. ``../xpaste/crops/a.png``), so they resolve from wherever the index is
        written; absolute paths are kept.
        """
        meta = json.dumps(dict(version=FORMAT_VERSION, segmenters=list(self.segmenters),
                               sources=list(SOURCES), info=self.info), ensure_ascii=False)
        arrays = {name: np.asarray(getattr(self, name)) for name in _COLUMNS if name != 'meta'}
        arrays['path_offsets'], arrays['path_blob'] = _rebase_paths(
            arrays['path_offsets'], arrays['path_blob'], Path(self.root).resolve(),
            Path(path).resolve().parent)
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
        paths are relative to the JSON file's folder (``root``). Rows are sorted by category id and
        keep the file's order within a category.

        The file is scanned as bytes with numpy (no Python object per entry): a 1.4M-entry pool loads
        in a fraction of ``json.load``'s time and memory. Files with backslash escapes, or laid out
        unlike ``json.dump``'s output, go through ``json.load`` (same result, slower).
        """
        json_path = Path(json_path).resolve()
        try:
            raw = json_path.read_bytes()
        except OSError as exc:
            raise PoolFormatError(f'X-Paste pool {json_path}: cannot read JSON ({exc})') from exc
        scanned = _scan_pool_json(raw)
        del raw
        data, (keys, list_counts, starts, ends) = scanned or _parse_pool_json(json_path)
        bar = data.tobytes().find(b'|') if len(data) < 2**20 else _find_byte(data, ord('|'))
        if bar >= 0:
            entry = np.searchsorted(ends, bar, side='right')
            if entry < len(ends) and starts[entry] <= bar:
                text = bytes(data[starts[entry]:ends[entry]]).decode('utf-8', errors='replace')
                raise PoolFormatError(f'X-Paste pool {json_path}: entry {text!r} is not a pre-cropped RGBA '
                                      'path ("*<path>"); run img|mask entries through pool_builder filter')
        if len(starts):
            starts = starts + (data[np.minimum(starts, len(data) - 1)] == ord('*')) * (starts < ends)
        if (starts >= ends).any():
            list_of = np.repeat(np.arange(len(keys)), list_counts)
            bad = keys[list_of[np.flatnonzero(starts >= ends)[0]]]
            raise PoolFormatError(f'X-Paste pool {json_path}: an entry under {bad!r} is an empty path')
        starts = _strip_prefix(data, starts, ends, json_path.parent.as_posix().rstrip('/') + '/')
        list_cats = [cls._xpaste_category(json_path, key, category_ids) for key in keys]
        order = np.argsort(np.asarray(list_cats, dtype=np.int64), kind='stable')
        if (order == np.arange(len(order))).all():  # lists already in category order (the usual case)
            rows = slice(None)
        else:
            list_starts = np.r_[0, np.cumsum(list_counts)]
            rows = np.concatenate([np.arange(list_starts[k], list_starts[k + 1]) for k in order] or
                                  [np.zeros(0, np.int64)])
        lengths = (ends - starts)[rows]
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        num = len(lengths)
        return cls(category_id=np.repeat(np.asarray(list_cats, dtype=np.int32)[order],
                                         np.asarray(list_counts)[order]),
                   path_offsets=offsets, path_blob=_gather_segments(data, starts[rows], lengths),
                   source=np.full(num, SOURCES.index('generated'), dtype=np.uint8),
                   segmenter=np.zeros(num, dtype=np.uint8), score=np.full(num, np.nan, dtype=np.float32),
                   area=np.full(num, np.nan, dtype=np.float32), width=np.zeros(num, dtype=np.int32),
                   height=np.zeros(num, dtype=np.int32), segmenters=('',),
                   info=dict(imported_from=str(json_path)), root=json_path.parent)

    @staticmethod
    def _xpaste_category(json_path: Path, key: str, category_ids: Sequence[int] | None) -> int:
        try:
            label = int(key)
        except ValueError as exc:
            raise PoolFormatError(f'X-Paste pool {json_path}: key {key!r} is not an integer label') from exc
        if category_ids is None:
            return label + 1
        if not 0 <= label < len(category_ids):
            raise PoolFormatError(f'X-Paste pool {json_path}: label {label} is outside the '
                                  f'{len(category_ids)} dataset categories')
        return int(category_ids[label])

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


def import_checked_xpaste_json(json_path: str | os.PathLike, out_path: str | os.PathLike,
                               category_ids: Sequence[int] | None = None,
                               check: int | str = 256) -> tuple[Path, str]:
    """Import an X-Paste pool JSON as the index ``out_path`` once its crop files are found.

    ``check`` crop files (or ``'all'``) are tested; none existing raises ``FileNotFoundError`` and
    nothing is written. Relative crop paths are stored relative to ``out_path``'s folder. Returns the
    written path and a one-line summary (with the count and examples of missing files).
    """
    index = PoolIndex.from_xpaste_json(json_path, category_ids=category_ids)
    if len(index) == 0:
        raise PoolFormatError(f'X-Paste pool {json_path}: no entries')
    checked, missing = index.check_files(check)
    examples = ', '.join(missing[:3])
    if len(missing) == checked:
        raise FileNotFoundError(f'X-Paste pool {json_path}: none of the {checked} crop files checked exists '
                                f'(e.g. {examples}); relative entries are resolved against the JSON\'s '
                                f'folder {index.root}: fix the paths or move the JSON next to the crops')
    out = index.save(out_path)
    found = f'{checked - len(missing)} of {checked} crop files checked exist'
    if missing:
        found += f'; MISSING {len(missing)}, e.g. {examples} (they will be skipped when pasting)'
    return out, f'wrote {out} ({len(index)} instances; {found})'


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


# ---------------------------------------------------------------------- X-Paste JSON scanning
# Non-blank text between two strings of '{"<key>": ["<path>", ...], ...}'; which ones come after a key
# and which ones come before one.
_AFTER_KEY = (b':[', b':[],')
_BEFORE_KEY = (b'],', b':[],')
_GAP_TOKENS = (b',', b':[', b'],', b':[],')
_MAX_GAP = 16  # bytes between two strings (json.dump's layouts, indent included, stay below)
_MAX_GAP_KINDS = 64
_CHUNK = 1 << 18


def _scan_pool_json(raw: bytes) -> tuple[np.ndarray, tuple] | None:
    """Scan the bytes of ``{"<key>": ["<path>", ...], ...}`` with numpy: the keys in file order, the
    number of entries of each, and the byte ``[start, end)`` of every entry's text. ``None`` when the
    bytes hold backslash escapes or invalid UTF-8, are laid out otherwise, or are not JSON of that
    shape (the caller then uses ``json.load``, which also reports syntax errors)."""
    if b'\\' in raw or not raw:
        return None
    if not raw.isascii():
        try:
            raw.decode('utf-8')
        except UnicodeDecodeError:
            return None
    data = np.frombuffer(raw, dtype=np.uint8)
    quotes = _find_all(data, ord('"'))
    if len(quotes) < 2 or len(quotes) % 2:
        return None
    opens, closes = quotes[0::2], quotes[1::2]
    head = b''.join(raw[:opens[0]].split())
    tail = b''.join(raw[closes[-1] + 1:].split())
    if head != b'{' or tail not in (b']}', b':[]}'):
        return None
    tokens = _gap_tokens(raw, data, closes[:-1] + 1, opens[1:])
    if tokens is None:
        return None
    after_key = np.r_[np.isin(tokens, [_GAP_TOKENS.index(t) for t in _AFTER_KEY]), tail == b':[]}']
    before_key = np.r_[True, np.isin(tokens, [_GAP_TOKENS.index(t) for t in _BEFORE_KEY])]
    if (before_key != after_key).any():  # e.g. a key followed by ',': not this shape
        return None
    key_strings = np.flatnonzero(after_key)
    keys = [raw[opens[k] + 1:closes[k]].decode('utf-8') for k in key_strings]
    if len(set(keys)) != len(keys):
        return None  # duplicate keys: the json.load path reports them
    counts = np.diff(np.r_[key_strings, len(opens)]) - 1
    entries = np.flatnonzero(~after_key)
    return data, (keys, counts, opens[entries] + 1, closes[entries])


def _gap_tokens(raw: bytes, data: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray | None:
    """Index into :data:`_GAP_TOKENS` of the non-blank text of each ``raw[start:stop]``, or ``None``.

    Each gap is read as two little-endian 64-bit words (unaligned views of the bytes) cut to its
    length; the few distinct gaps of a file are then classified one by one."""
    lengths = stops - starts
    if len(lengths) == 0:
        return np.zeros(0, dtype=np.int64)
    if lengths.max() > _MAX_GAP:
        return None
    if len(data) < 4 * _MAX_GAP:  # unaligned 8-byte reads below need bytes after every gap
        data = np.concatenate([data, np.zeros(_MAX_GAP, np.uint8)])
    words = np.ndarray(shape=(len(data) - 7,), dtype='<u8', buffer=data, strides=(1,))
    byte_masks = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
    low = words[np.minimum(starts, len(words) - 1)] & byte_masks[np.minimum(lengths, 8)]
    high = None
    if lengths.max() > 8:
        if (starts[lengths > 8] + 8 >= len(words)).any():
            return None
        high = words[np.minimum(starts + 8, len(words) - 1)] & byte_masks[np.clip(lengths - 8, 0, 8)]
    tokens = np.full(len(starts), -1, dtype=np.int64)
    for _ in range(_MAX_GAP_KINDS):
        todo = np.flatnonzero(tokens < 0)
        if len(todo) == 0:
            return tokens
        j = todo[0]
        text = b''.join(raw[starts[j]:stops[j]].split())
        if text not in _GAP_TOKENS:
            return None
        same = (low == low[j]) & (lengths == lengths[j])
        if high is not None:
            same &= high == high[j]
        tokens[same] = _GAP_TOKENS.index(text)
    return None


def _parse_pool_json(json_path: Path) -> tuple[np.ndarray, tuple]:
    """``json.load`` fallback of :func:`_scan_pool_json`: the entries' UTF-8 bytes and the same tuple."""
    def unique_keys(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise PoolFormatError(f'X-Paste pool {json_path}: a label key appears twice')
        return dict(pairs)

    try:
        with open(json_path, encoding='utf-8') as f:
            pool = json.load(f, object_pairs_hook=unique_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoolFormatError(f'X-Paste pool {json_path}: cannot read JSON ({exc})') from exc
    if not isinstance(pool, dict):
        raise PoolFormatError(f'X-Paste pool {json_path}: expected an object keyed by label')
    encoded = []
    for key, entries in pool.items():
        if not isinstance(entries, list):
            raise PoolFormatError(f'X-Paste pool {json_path}: the value under {key!r} is not a list of '
                                  'paths')
        bad = next((e for e in entries if not isinstance(e, str)), None)
        if bad is not None:
            raise PoolFormatError(f'X-Paste pool {json_path}: entry {bad!r} under {key!r} is not a '
                                  'pre-cropped RGBA path ("*<path>")')
        encoded.extend(e.encode('utf-8') for e in entries)
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    ends = np.cumsum(lengths)
    data = np.frombuffer(b''.join(encoded), dtype=np.uint8)
    return data, (list(pool), np.array([len(v) for v in pool.values()], dtype=np.int64), ends - lengths,
                  ends)


def _strip_prefix(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, prefix: str) -> np.ndarray:
    """Starts moved past ``prefix`` for the entries beginning with it (absolute paths under the JSON's
    folder become relative to it, as :meth:`PoolIndex.from_records` stores them)."""
    needle = prefix.encode('utf-8')
    size = len(needle)
    step = 1 << 24
    if not any(data[first:first + step + size].tobytes().find(needle) >= 0
               for first in range(0, len(data), step)):
        return starts
    pattern = np.frombuffer(needle, dtype=np.uint8)
    starts = starts.copy()
    first_bytes = data[np.minimum(starts, len(data) - 1)]
    candidates = np.flatnonzero((ends - starts > size) & (first_bytes == pattern[0]))
    for first in range(0, len(candidates), _CHUNK):
        rows = candidates[first:first + _CHUNK]
        match = (data[starts[rows, None] + np.arange(size)] == pattern).all(axis=1)
        starts[rows[match]] += size
    return starts


def _find_all(data: np.ndarray, value: int) -> np.ndarray:
    """Positions of every ``value`` byte in ``data`` (chunked: no array of the data's size)."""
    step = 1 << 23
    return np.concatenate([np.flatnonzero(data[first:first + step] == value) + first
                           for first in range(0, len(data), step)] or [np.zeros(0, np.int64)])


def _find_byte(data: np.ndarray, value: int) -> int:
    """Position of the first ``value`` byte in ``data`` (-1 if none), scanning 16 MiB at a time."""
    step = 1 << 24
    for first in range(0, len(data), step):
        hit = data[first:first + step].tobytes().find(bytes([value]))
        if hit >= 0:
            return first + hit
    return -1


def _gather_segments(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate ``data[start:start + length]`` for every segment, in order (vectorised, chunked).

    Ascending disjoint segments (entries in file order) are cut out of their span with a keep-mask
    whose dropped runs are mostly of one length (the ``", "*`` between two entries of a list)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    for first in range(0, len(lengths), _CHUNK):
        last = min(first + _CHUNK, len(lengths))
        s, e = starts[first:last], starts[first:last] + lengths[first:last]
        target = slice(offsets[first], offsets[last])
        if not (s[1:] >= e[:-1]).all():
            shift = np.repeat(s - offsets[first:last], lengths[first:last])
            out[target] = data[np.arange(offsets[first], offsets[last]) + shift]
            continue
        keep = np.ones(e[-1] - s[0], dtype=bool)
        gap_starts, gap_lengths = e[:-1] - s[0], s[1:] - e[:-1]
        common = int(np.bincount(gap_lengths[:4096]).argmax()) if len(gap_lengths) else 0
        regular = gap_lengths == common
        keep[(gap_starts[regular, None] + np.arange(common)).ravel()] = False
        odd = np.flatnonzero(~regular)
        if len(odd):
            odd_lengths = gap_lengths[odd]
            run_starts = np.repeat(gap_starts[odd] - np.r_[0, np.cumsum(odd_lengths)[:-1]], odd_lengths)
            keep[run_starts + np.arange(len(run_starts))] = False
        out[target] = data[s[0]:e[-1]][keep]
    return out


def _rebase_paths(offsets: np.ndarray, blob: np.ndarray, root: Path,
                  folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite the relative paths of a path table (relative to ``root``) relative to ``folder``."""
    if root == folder or len(offsets) < 2:
        return offsets, blob
    try:
        prefix = os.path.relpath(root, folder).replace(os.sep, '/') + '/'
    except ValueError:  # another drive (Windows)
        prefix = root.as_posix().rstrip('/') + '/'
    offsets, blob = np.asarray(offsets), np.asarray(blob)
    lengths = np.diff(offsets)
    first = blob[np.minimum(offsets[:-1], max(len(blob) - 1, 0))] if len(blob) else np.zeros(0, np.uint8)
    relative = (lengths > 0) & (first != ord('/'))
    if os.name == 'nt':
        relative &= ~np.array([os.path.isabs(bytes(blob[a:b]).decode('utf-8'))
                               for a, b in zip(offsets[:-1], offsets[1:])], dtype=bool)
    if not relative.any():
        return offsets, blob
    pre = np.frombuffer(prefix.encode('utf-8'), dtype=np.uint8)
    new_lengths = lengths + relative * len(pre)
    new_offsets = np.zeros_like(offsets)
    np.cumsum(new_lengths, out=new_offsets[1:])
    source = np.concatenate([pre, blob])
    # every row = (prefix if relative) + its text, gathered from [prefix | old blob]
    seg_starts = np.stack([np.zeros(len(lengths), np.int64), offsets[:-1] + len(pre)], axis=1).ravel()
    seg_lengths = np.stack([relative * len(pre), lengths], axis=1).ravel()
    return new_offsets, _gather_segments(source, seg_starts, seg_lengths)
