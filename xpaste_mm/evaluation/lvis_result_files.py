"""Read COCO-style LVIS result files (any framework) into compact, validated :class:`LVISDetections`.

A result file is a JSON list of records ``{"image_id", "category_id", "score", "bbox": [x, y, w, h]
(pixels), "segmentation": RLE dict (compressed or uncompressed) or polygons}``, lvis-api's input.
One pass over the file finds spans of whole records (a vectorised scan of quotes and braces
through one reused buffer); each span is then read again, parsed and turned into arrays by a worker
process, so memory holds one span of Python objects per worker and no text passes between
processes. Masks are only kept for detections that lvis-api can evaluate (category annotated in the
image or in its ``neg_category_ids``), and only those evaluated after the 300-per-image cap survive.

lvis-api's rules kept here: the area of a detection is ``w * h`` of its box when the FIRST record
has a ``bbox``, else the mask area (and the box is the mask's bounding box); see
:mod:`.lvis_detections` for the cap, zero-area and federated rules. Unlike lvis-api, unknown
category ids, malformed boxes, NaN scores, short polygons and mask sizes that differ from the image
are errors naming the record.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import NoReturn

import numpy as np
import pycocotools.mask as mask_utils
from tqdm import tqdm

from .fast_json import loads, paused_gc
from .lvis_detections import LVISDetections, PackedRLE, evaluated_detections
from .lvis_ground_truth import LVISGroundTruth, sorted_lookup

#: Bytes of JSON parsed at once.
CHUNK_BYTES = 1 << 25

# pycocotools' area() sizes a uint8 array by the number of masks: more than 255 overflow on numpy 2.
_AREA_BATCH = 255
_QUOTE, _BACKSLASH = ord('"'), ord('\\')
_OPEN, _CLOSE = ord('{'), ord('}')


class ResultFileError(ValueError):
    """A result file that cannot be evaluated; the message names the file and the record."""


def _string_quotes(data: np.ndarray) -> np.ndarray:
    """Positions of the quotes that open or close JSON strings (not escaped ones)."""
    quotes = np.flatnonzero(data == _QUOTE)
    escaped = quotes[(quotes > 0) & (data[np.maximum(quotes - 1, 0)] == _BACKSLASH)]
    if len(escaped) == 0:
        return quotes
    drop = []
    for q in escaped.tolist():  # rare: count the backslashes before the quote
        run = 0
        while q - run - 1 >= 0 and data[q - run - 1] == _BACKSLASH:
            run += 1
        if run % 2:
            drop.append(q)
    return np.setdiff1d(quotes, drop, assume_unique=True)


def _record_ends(data: np.ndarray) -> np.ndarray:
    """Ends (inclusive) of the complete top-level objects in ``data``.

    ``data`` starts inside the top-level list, between elements. Only braces outside strings count,
    so the scan is a few vectorised passes over the bytes.
    """
    quotes = _string_quotes(data)
    braces = np.flatnonzero((data == _OPEN) | (data == _CLOSE))
    braces = braces[np.searchsorted(quotes, braces) % 2 == 0]  # outside strings
    closing = data[braces] == _CLOSE
    depth = np.cumsum(np.where(closing, -1, 1), dtype=np.int64)
    return braces[closing & (depth == 0)]


@dataclass(frozen=True)
class _Span:
    """Whole records of a result file: bytes ``[start, end)``, records ``#first``... on.

    Every span but the first starts with the comma that separates it from the previous record.
    """

    start: int
    end: int
    first: int


def _fill(f, view: memoryview) -> int:
    """Read into ``view`` until it is full or the file ends; the number of bytes read."""
    filled = 0
    while filled < len(view):
        got = f.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


_WHITESPACE = re.compile(rb'\s*')


def iter_record_spans(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> Iterator[_Span]:
    """Split the JSON list in ``path`` into spans of whole records, about ``chunk_bytes`` each.

    The file is scanned through one reused buffer (grown only for a record longer than it), so
    the scan keeps no text; the records are read again, span by span, by whoever parses them. The
    first record is a span of its own: lvis-api decides by it where boxes and areas come from.
    """
    buffer = bytearray(max(1, chunk_bytes))
    base, count = 0, 0  # file offset of buffer[0]; records found so far
    with open(path, 'rb') as f:
        filled = _fill(f, memoryview(buffer))
        eof = filled < len(buffer)
        position = _WHITESPACE.match(buffer, 0, filled).end()
        while position == filled and not eof:  # leading whitespace longer than the buffer
            base += filled
            filled = _fill(f, memoryview(buffer))
            eof = filled < len(buffer)
            position = _WHITESPACE.match(buffer, 0, filled).end()
        if buffer[position:position + 1] != b'[':
            raise ResultFileError(f'{path}: a result file must hold a JSON list of detection records '
                                  f'([{{"image_id": ..., "category_id": ..., "score": ..., "bbox": ...}}, '
                                  f'...]); it starts with {bytes(buffer[position:position + 40])!r}')
        position += 1
        while True:
            ends = _record_ends(np.frombuffer(buffer, np.uint8, filled - position, position))
            if len(ends) > 1 and count == 0:
                first_end = position + int(ends[0]) + 1
                yield _Span(base + position, base + first_end, 0)
                ends, position, count = ends[1:] - (first_end - position), first_end, 1
            if len(ends):
                cut = position + int(ends[-1]) + 1
                yield _Span(base + position, base + cut, count)
                count += len(ends)
                position = cut
            if eof:  # every complete record has been cut off
                break
            rest = filled - position
            if rest == len(buffer):  # a record longer than the buffer
                buffer.extend(bytes(len(buffer)))
            buffer[:rest] = buffer[position:filled]
            base, position = base + position, 0
            filled = rest + _fill(f, memoryview(buffer)[rest:])
            eof = filled < len(buffer)
    rest = bytes(buffer[position:filled]).strip()
    if rest != b']':
        where = f'(byte {base + position})'
        if rest.startswith(b']'):
            problem = f'unexpected data after the closing "]" {where}: {rest[1:41]!r}'
        elif rest.endswith(b']'):
            problem = f'unexpected data after the last complete record {where}: {rest[:40]!r}'
        else:
            problem = 'the JSON list is not closed (file truncated?)'
        raise ResultFileError(f'{path}: {problem}')


def parse_span(path: str | os.PathLike, span: _Span) -> list:
    """The records of one span, read from the file."""
    text = bytearray(span.end - span.start + 2)  # the span as a JSON list: [ records ]
    text[0], text[-1] = ord('['), ord(']')
    with open(path, 'rb') as f:
        f.seek(span.start)
        _fill(f, memoryview(text)[1:-1])
    if span.first:  # blank the comma before the span's first record
        comma = _WHITESPACE.match(text, 1).end()
        if text[comma:comma + 1] == b',':
            text[comma] = ord(' ')
    try:
        return loads(text)
    except json.JSONDecodeError as error:
        raise ResultFileError(f'{path}: invalid JSON near byte {span.start + error.pos - 1}: '
                              f'{error.msg}') from None


def iter_record_chunks(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> Iterator[list]:
    """Yield the elements of the JSON list in ``path`` in order, as lists of about ``chunk_bytes``."""
    for span in iter_record_spans(path, chunk_bytes):
        yield parse_span(path, span)


@dataclass
class _Chunk:
    image_index: np.ndarray
    category_index: np.ndarray
    scores: np.ndarray
    bboxes: np.ndarray
    areas: np.ndarray | None
    masks: PackedRLE | None
    span_bytes: int  # size of the span read, bytes


_COLUMN_TYPES = {'int': {int}, 'number': {int, float}}


def _rows_of(values: list, width: int, dtype) -> np.ndarray | None:
    """``values`` (lists of ``width`` numbers) as an (N, width) array, or None if any is not."""
    if not set(map(type, values)) <= {list}:
        return None
    if len(values) and not (np.fromiter(map(len, values), np.int64, len(values)) == width).all():
        return None
    flat = itertools.chain.from_iterable(values)
    if not set(map(type, flat)) <= _COLUMN_TYPES['number']:
        return None
    return np.fromiter(itertools.chain.from_iterable(values), dtype, width * len(values)).reshape(-1, width)


class _ChunkReader:
    """Turns record chunks into arrays, with lvis-api's box/area rule fixed by the first record."""

    def __init__(self, path: str, gt: LVISGroundTruth, with_masks: bool, box_from_mask: bool):
        self.path, self.gt, self.with_masks, self.box_from_mask = str(path), gt, with_masks, box_from_mask
        self.first = 0  # file index of the chunk's first record

    def fail(self, index: int, record, problem: str) -> NoReturn:
        shown = {k: record[k] for k in ('image_id', 'category_id', 'score') if k in record} \
            if isinstance(record, dict) else record
        raise ResultFileError(f'{self.path}: record #{self.first + index} {shown}: {problem}')

    def _first_bad(self, records: list, check) -> NoReturn:
        for i, record in enumerate(records):
            problem = check(record)
            if problem:
                self.fail(i, record, problem)
        raise ResultFileError(f'{self.path}: records #{self.first}-#{self.first + len(records) - 1} '
                              'are malformed')  # not reached: check finds the record

    @staticmethod
    def _field_problem(record, field: str, kind: str) -> str | None:
        if not isinstance(record, dict):
            return f'is a {type(record).__name__}, expected an object with image_id, category_id, score'
        if field not in record:
            return f'has no {field!r} (got fields {sorted(record)})'
        value = record[field]
        if kind == 'int' and (isinstance(value, bool) or not isinstance(value, int)):
            return f'{field} must be an integer, got {value!r}'
        if kind == 'number' and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f'{field} must be a number, got {value!r}'
        if kind == 'box' and _rows_of([value], 4, np.float64) is None:
            return f'bbox must be 4 numbers [x, y, w, h], got {value!r}'
        return None

    def _column(self, records: list, field: str, kind: str, dtype) -> np.ndarray:
        """One field of every record as an array (type-checked in C: a set of the value types)."""
        try:
            values = list(map(itemgetter(field), records))
            if kind == 'box':
                array = _rows_of(values, 4, dtype)
            elif set(map(type, values)) <= _COLUMN_TYPES[kind]:
                array = np.fromiter(values, dtype=dtype, count=len(values))
            else:
                array = None
        except (KeyError, TypeError, OverflowError):
            array = None
        if array is None:
            self._first_bad(records, lambda r: self._field_problem(r, field, kind))
        return array

    def _index(self, records: list, ids: np.ndarray, known: np.ndarray, what: str) -> np.ndarray:
        position, found = sorted_lookup(known, ids)
        if not found.all():
            first = int(np.argmin(found))
            hint = ''
            if found.mean() < 0.5:
                hint = (f' {int((~found).sum())} of {len(ids)} records in this part of the file name unknown '
                        f'{what}s: the results were probably made for another annotation set than '
                        f'{self.gt.source}.')
            self.fail(first, records[first], f'{what} {int(ids[first])} is not in {self.gt.source}.{hint}')
        return position.astype(np.int32)

    def _rle(self, index: int, record: dict, height: int, width: int) -> dict:
        """Compressed RLE of one record's segmentation, checked against the image size."""
        segmentation = record.get('segmentation')
        if isinstance(segmentation, dict) and 'counts' in segmentation and 'size' in segmentation:
            if list(segmentation['size']) != [height, width]:
                self.fail(index, record, f'mask size {segmentation["size"]} differs from the image size '
                                         f'[{height}, {width}] (height, width) in {self.gt.source}')
            if isinstance(segmentation['counts'], list):
                return mask_utils.frPyObjects(segmentation, height, width)
            if isinstance(segmentation['counts'], (str, bytes)):
                return segmentation
        elif (isinstance(segmentation, list) and segmentation
              and all(isinstance(p, list) for p in segmentation)):
            for polygon in segmentation:
                if len(polygon) < 6 or len(polygon) % 2:
                    self.fail(index, record, f'polygon with {len(polygon)} coordinates: a polygon needs at '
                                             'least 3 points (x1, y1, x2, y2, x3, y3, ...)')
                if not all(isinstance(v, (int, float)) and v == v for v in polygon):
                    self.fail(index, record, 'polygon coordinates must be numbers')
            return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        self.fail(index, record, 'segmentation must be an RLE {"size": [h, w], "counts": ...} or a list '
                                 f'of polygons, got {type(segmentation).__name__}')

    @staticmethod
    def _packed_strings(segmentations: list, federated: np.ndarray,
                        image_sizes: np.ndarray) -> PackedRLE | None:
        """The common case in C loops: compressed RLEs with string counts of the image's size."""
        if set(map(type, segmentations)) != {dict}:
            return None
        try:
            counts = list(map(itemgetter('counts'), segmentations))
            sizes = _rows_of(list(map(itemgetter('size'), segmentations)), 2, np.int64)
        except KeyError:
            return None
        if sizes is None or not (sizes == image_sizes).all() or set(map(type, counts)) != {str}:
            return None
        kept = list(itertools.compress(counts, federated.tolist()))
        text = ''.join(kept)
        if not text.isascii():
            return None
        lengths = np.zeros(len(counts), np.int64)
        lengths[federated] = np.fromiter(map(len, kept), np.int64, len(kept))
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return PackedRLE(text.encode('ascii'), offsets, np.where(federated[:, None], sizes, 0))

    def _masks(self, records: list, federated: np.ndarray, heights: np.ndarray,
               widths: np.ndarray) -> PackedRLE:
        """Compressed RLEs of the federated records (others: empty placeholders), all checked."""
        try:
            segmentations = list(map(itemgetter('segmentation'), records))
        except (KeyError, TypeError):
            self._first_bad(records, lambda r: None if isinstance(r, dict) and 'segmentation' in r else
                            'has no segmentation (segm / boundary evaluation needs masks)')
        packed = self._packed_strings(segmentations, federated, np.stack([heights, widths], axis=1))
        if packed is not None:
            return packed
        placeholder = {'size': [0, 0], 'counts': b''}
        rles = [self._rle(i, record, int(heights[i]), int(widths[i])) if keep else placeholder
                for i, (record, keep) in enumerate(zip(records, federated.tolist()))]
        for i in np.flatnonzero(~federated).tolist():  # still check the masks that are not evaluated
            self._rle(i, records[i], int(heights[i]), int(widths[i]))
        return PackedRLE.from_rles(rles)

    def first_record(self, record) -> None:
        """Check the first record of the file, which decides where boxes and areas come from."""
        if not isinstance(record, dict):
            self.fail(0, record, self._field_problem(record, 'image_id', 'int'))
        if self.box_from_mask and not self.with_masks:
            self.fail(0, record, 'has no bbox (and bbox evaluation needs one)')
        if self.box_from_mask and 'segmentation' not in record:
            self.fail(0, record, 'has neither bbox nor segmentation')

    def read(self, span: _Span) -> _Chunk:
        """Arrays of one span of records (checked; masks only kept where lvis-api evaluates them)."""
        with paused_gc():
            return self._read(parse_span(self.path, span), span.first, span.end - span.start)

    def _read(self, records: list, first: int, span_bytes: int) -> _Chunk:
        self.first = first
        gt = self.gt
        image_index = self._index(records, self._column(records, 'image_id', 'int', np.int64),
                                  gt.image_ids, 'image id')
        category_index = self._index(records, self._column(records, 'category_id', 'int', np.int64),
                                     gt.category_ids, 'category id')
        scores = self._column(records, 'score', 'number', np.float64)
        if np.isnan(scores).any():
            first = int(np.argmax(np.isnan(scores)))
            self.fail(first, records[first], 'score is NaN')
        bboxes = None if self.box_from_mask else self._column(records, 'bbox', 'box', np.float64)
        areas, masks = None, None
        if self.with_masks:
            federated = gt.federated(image_index, category_index)
            masks = self._masks(records, federated, gt.image_heights[image_index],
                                gt.image_widths[image_index])
            if self.box_from_mask:
                bboxes, areas = np.zeros((len(records), 4)), np.zeros(len(records))
                kept = masks.rles(np.flatnonzero(federated).tolist())
                if kept:
                    bboxes[federated] = mask_utils.toBbox(kept)
                    areas[federated] = np.concatenate([mask_utils.area(kept[i:i + _AREA_BATCH])
                                                       for i in range(0, len(kept), _AREA_BATCH)])
        return _Chunk(image_index, category_index, scores, bboxes, areas, masks, span_bytes)


# Set before the reading workers fork; read by them.
_READER: dict = {}


def _read_forked(span: _Span) -> _Chunk:
    return _READER['reader'].read(span)


def _read_chunks(reader: _ChunkReader, spans: Iterator[_Span], num_workers: int,
                 progress: bool) -> list[_Chunk]:
    """Parse and convert spans, in ``num_workers`` forked processes that read the file themselves."""
    bar = tqdm(total=os.path.getsize(reader.path), unit='B', unit_scale=True, disable=not progress,
               desc=f'reading {os.path.basename(reader.path)}', leave=False)
    chunks = []
    _READER['reader'] = reader
    try:
        with contextlib.ExitStack() as stack:
            if num_workers > 1:
                pool = stack.enter_context(multiprocessing.get_context('fork').Pool(num_workers))
                results = pool.imap(_read_forked, spans)
            else:
                results = map(reader.read, spans)
            for chunk in results:
                chunks.append(chunk)
                bar.update(chunk.span_bytes)
    finally:
        _READER.clear()
        bar.close()
    return chunks


def read_result_file(path: str | os.PathLike, gt: LVISGroundTruth, with_masks: bool,
                     num_workers: int = 1, chunk_bytes: int = CHUNK_BYTES,
                     progress: bool = False) -> tuple[LVISDetections, int]:
    """Detections lvis-api would evaluate from a result file, and the number of records in it.

    ``with_masks``: read and check ``segmentation`` (for segm / boundary). ``num_workers`` > 1
    parses chunks in that many forked processes. Raises :class:`ResultFileError` naming the record
    for bad input.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ResultFileError(f'result file {path} does not exist')
    spans = iter_record_spans(path, chunk_bytes)
    first = next(spans, None)  # the first record alone: it decides where boxes and areas come from
    head = None if first is None else parse_span(path, first)[0]
    reader = _ChunkReader(path, gt, with_masks, box_from_mask=isinstance(head, dict) and 'bbox' not in head)
    if first is not None:
        reader.first_record(head)
    chunks = [] if first is None else _read_chunks(reader, itertools.chain([first], spans), num_workers,
                                                           progress)
    count = sum(len(c.scores) for c in chunks)

    def joined(field: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([getattr(c, field) for c in chunks] + [empty])

    every = LVISDetections(image_index=joined('image_index', np.zeros(0, np.int32)),
                           category_index=joined('category_index', np.zeros(0, np.int32)),
                           scores=joined('scores', np.zeros(0)), bboxes=joined('bboxes', np.zeros((0, 4))),
                           area=joined('areas', np.zeros(0)) if reader.box_from_mask else None)
    kept = evaluated_detections(every, gt)
    masks = None
    if with_masks:  # subset chunk by chunk, freeing the full buffers as we go
        bounds = np.cumsum([0] + [len(c.scores) for c in chunks])
        parts = []
        for k in range(len(chunks)):
            rows = kept[(kept >= bounds[k]) & (kept < bounds[k + 1])] - bounds[k]
            parts.append(chunks[k].masks.subset(rows))
            chunks[k] = None
        masks = PackedRLE.concatenate(parts)
    detections = LVISDetections(image_index=every.image_index[kept],
                                category_index=every.category_index[kept],
                                scores=every.scores[kept], bboxes=every.bboxes[kept],
                                area=None if every.area is None else every.area[kept], masks=masks)
    return detections, count
