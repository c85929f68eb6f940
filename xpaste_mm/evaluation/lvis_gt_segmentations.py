"""Ground-truth segmentations of an annotation file, held in flat arrays instead of JSON objects.

A parsed LVIS annotation file is some 10^7 small Python objects. Keeping only its polygons alive
pinned scattered pieces of the freed heap, and every later allocation (the records of result files,
the evaluation's own objects) landed in those holes: reading LVIS v1 val-sized results after loading
the ground truth ran about 2x slower. Held as arrays, the parsed file is freed whole.

Polygons come back exactly as the file gave them (numbers as Python floats), so
``pycocotools.mask.frPyObjects`` rasterises them as it would the file's lists. Segmentations that
are not polygon lists (RLE dicts, or anything malformed) are kept as they are.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


def _is_polygon_list(segmentation) -> bool:
    return type(segmentation) is list and all(type(polygon) is list for polygon in segmentation)


def _numbers_only(polygons: list) -> bool:
    return set(map(type, itertools.chain.from_iterable(polygons))) <= {int, float}


@dataclass
class GTSegmentations:
    """Segmentations by annotation row: polygons in flat arrays, anything else as given."""

    coords: np.ndarray  # (C,) float64: x1, y1, x2, y2, ... of every polygon, pixels
    polygon_starts: np.ndarray  # (P + 1,) int64: polygon p is coords[polygon_starts[p]:polygon_starts[p + 1]]
    row_polygons: np.ndarray  # (A + 1,) int64: row a has polygons row_polygons[a]:row_polygons[a + 1]
    others: dict  # row -> segmentation as in the file, for rows that are not polygon lists

    @classmethod
    def from_list(cls, segmentations: list) -> GTSegmentations:
        """Pack one segmentation per annotation row (polygon lists, RLE dicts, ...)."""
        polygon_rows = [_is_polygon_list(s) for s in segmentations]
        if not _numbers_only(itertools.chain.from_iterable(itertools.compress(segmentations, polygon_rows))):
            polygon_rows = [keep and _numbers_only(s) for s, keep in zip(segmentations, polygon_rows)]
        others = {row: s for row, (s, keep) in enumerate(zip(segmentations, polygon_rows)) if not keep}
        polygons = list(itertools.chain.from_iterable(itertools.compress(segmentations, polygon_rows)))
        per_row = [len(s) if keep else 0 for s, keep in zip(segmentations, polygon_rows)]
        lengths = np.fromiter(map(len, polygons), np.int64, len(polygons))
        coords = np.fromiter(itertools.chain.from_iterable(polygons), np.float64, int(lengths.sum()))
        return cls(coords=coords,
                   polygon_starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   row_polygons=np.concatenate([[0], np.cumsum(per_row, dtype=np.int64)]).astype(np.int64),
                   others=others)

    def __len__(self) -> int:
        return len(self.row_polygons) - 1

    def __getitem__(self, row: int):
        """The segmentation of one row: a list of polygons (lists of floats), or as in the file."""
        if row in self.others:
            return self.others[row]
        first, last = self.row_polygons[row], self.row_polygons[row + 1]
        bounds = self.polygon_starts[first:last + 1].tolist()
        return [self.coords[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
