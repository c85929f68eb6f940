"""Stage ``inspect``: look at a pool before training on it.

Writes into the output folder: ``report.md`` (per-category counts, mean score, a score histogram as a
text sparkline, flags, links), ``summary.json`` (the same numbers), ``score_histogram.png`` (all
scores) and ``contact_sheets/<category id>.png`` (the best-scored instances of each category on a
checkerboard, so transparency and cut-out quality are visible). Works on any pool index, including
an imported X-Paste pool. Unreadable crops are counted and drawn as a red cell.
"""
from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from xpaste_mm.datasets.pool_index import PoolIndex
from xpaste_mm.utils.io import atomic_write, atomic_write_json, atomic_write_text, remove_temp_files

from .imaging import write_png
from .options import InspectOptions
from .stage import Stage, register_stage
from .vocabulary import Vocabulary

SPARK = '▁▂▃▄▅▆▇█'


#: The report's files in its output folder, in the order of :class:`InspectionReport`'s path fields.
REPORT_FILES = ('report.md', 'summary.json', 'score_histogram.png')


@dataclass
class InspectionReport:
    """Paths written by :func:`inspect_pool` and what it found."""

    report: Path
    summary: Path
    histogram: Path
    contact_sheets: dict[int, Path] = field(default_factory=dict)
    flagged: list[int] = field(default_factory=list)
    unreadable: int = 0

    def __str__(self) -> str:
        return (f'inspect: report {self.report} ({len(self.flagged)} categories flagged, {self.unreadable} '
                'unreadable crops)')


def checkerboard(height: int, width: int, square: int = 8) -> np.ndarray:
    """RGB uint8 light/dark grey checkerboard."""
    yy, xx = np.mgrid[0:height, 0:width]
    dark = ((yy // square + xx // square) % 2).astype(bool)
    board = np.full((height, width, 3), 220, np.uint8)
    board[dark] = 160
    return board


def composite_rgba(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Alpha-blend an RGBA uint8 image over an RGB background of the same size."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgba[..., :3] * alpha + background * (1.0 - alpha)).round().astype(np.uint8)


def _thumbnail(path: Path, cell: int) -> np.ndarray | None:
    data = np.fromfile(path, np.uint8) if path.is_file() else np.zeros(0, np.uint8)
    bgra = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
        return None
    rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
    scale = (cell - 4) / max(rgba.shape[:2])
    size = (max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale)))
    rgba = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    tile = checkerboard(cell, cell)
    top, left = (cell - size[1]) // 2, (cell - size[0]) // 2
    tile[top:top + size[1], left:left + size[0]] = composite_rgba(
        rgba, tile[top:top + size[1], left:left + size[0]])
    return tile


LABEL_HEIGHT = 14


def contact_sheet(paths: list[Path], scores: list[float], cell: int = 96,
                  columns: int = 8) -> tuple[np.ndarray, int]:
    """RGB grid of thumbnails, each with its score below; returns (sheet, unreadable file count)."""
    columns = max(1, min(columns, len(paths)))
    rows = max(1, math.ceil(len(paths) / columns))
    pitch = cell + LABEL_HEIGHT
    sheet = np.full((rows * pitch, columns * cell, 3), 255, np.uint8)
    unreadable = 0
    for n, (path, score) in enumerate(zip(paths, scores)):
        tile = _thumbnail(path, cell)
        if tile is None:
            unreadable += 1
            tile = np.full((cell, cell, 3), (200, 40, 40), np.uint8)
            cv2.line(tile, (8, 8), (cell - 8, cell - 8), (255, 255, 255), 2)
            cv2.line(tile, (cell - 8, 8), (8, cell - 8), (255, 255, 255), 2)
        r, c = divmod(n, columns)
        top, left = r * pitch, c * cell
        sheet[top:top + cell, left:left + cell] = tile
        cv2.putText(sheet, f'{score:.2f}', (left + 3, top + cell + LABEL_HEIGHT - 3),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet, unreadable


def sparkline(counts: np.ndarray) -> str:
    """Histogram counts as a row of block characters (empty bins are spaces)."""
    top = max(int(counts.max()), 1) if counts.size else 1
    return ''.join(' ' if c == 0 else SPARK[min(len(SPARK) - 1, int(c * len(SPARK) / (top + 1)))]
                   for c in counts)


def inspect_pool(index_path: str | os.PathLike, out_dir: str | os.PathLike,
                 vocabulary: Vocabulary | None = None, min_instances: int = InspectOptions.min_instances,
                 per_sheet: int = InspectOptions.per_sheet, cell: int = 96,
                 bins: int = 12) -> InspectionReport:
    """Write the inspection report of a pool index (see the module docstring).

    Categories with fewer than ``min_instances`` instances are flagged; with a ``vocabulary`` its
    categories that have none are listed (and flagged) too.
    """
    index = PoolIndex.load(index_path)
    out_dir = Path(out_dir)
    (out_dir / 'contact_sheets').mkdir(parents=True, exist_ok=True)
    ranges = index.category_ranges()
    names = {c.id: c.name for c in vocabulary} if vocabulary else {}
    category_ids = sorted(set(ranges) | set(names))
    scores = np.asarray(index.score, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    edges = (np.linspace(finite.min(), finite.max() + 1e-6, bins + 1) if finite.size
             else np.linspace(0, 1, bins + 1))
    report = InspectionReport(*(out_dir / name for name in REPORT_FILES))
    rows = []
    for cat_id in category_ids:
        start, stop = ranges.get(cat_id, (0, 0))
        cat_scores = scores[start:stop]
        count = stop - start
        row = dict(id=cat_id, name=names.get(cat_id, str(cat_id)), instances=count,
                   mean_score=float(np.nanmean(cat_scores)) if count else None,
                   histogram=np.histogram(cat_scores[np.isfinite(cat_scores)], edges)[0].tolist(),
                   flagged=count < min_instances, contact_sheet=None)
        if count:
            order = start + np.argsort(-np.nan_to_num(cat_scores, nan=-np.inf), kind='stable')[:per_sheet]
            sheet, unreadable = contact_sheet([index.path(int(i)) for i in order],
                                              [float(scores[i]) for i in order], cell)
            report.unreadable += unreadable
            row['unreadable'] = unreadable
            path = write_png(out_dir / 'contact_sheets' / f'{cat_id}.png', sheet)
            report.contact_sheets[cat_id] = path
            row['contact_sheet'] = path.relative_to(out_dir).as_posix()
        if row['flagged']:
            report.flagged.append(cat_id)
        rows.append(row)
    _plot_histogram(finite, edges, report.histogram)
    summary = dict(index=str(Path(index_path).resolve()), instances=len(index), categories=len(ranges),
                   min_instances=min_instances, flagged=report.flagged, unreadable=report.unreadable,
                   score_bin_edges=[round(float(e), 4) for e in edges], info=index.info, per_category=rows)
    atomic_write_json(report.summary, summary, indent=1)
    atomic_write_text(report.report, _markdown(summary, rows, edges))
    return report


def _plot_histogram(scores: np.ndarray, edges: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.hist(scores, bins=edges, color='#4c72b0')
    ax.set_xlabel('CLIP score (100 x cosine)')
    ax.set_ylabel('instances')
    ax.set_title(f'{scores.size} pooled instances')
    fig.tight_layout()
    atomic_write(path, fig.savefig)
    plt.close(fig)


def _markdown(summary: dict, rows: list[dict], edges: np.ndarray) -> str:
    lines = ['# Instance pool report', '',
             f'- index: `{summary["index"]}`',
             f'- instances: {summary["instances"]} in {summary["categories"]} categories',
             f'- flagged (< {summary["min_instances"]} instances): {len(summary["flagged"])}',
             f'- unreadable crops: {summary["unreadable"]}',
             f'- score histogram bins: {edges[0]:.1f} .. {edges[-1]:.1f} in {len(edges) - 1} steps',
             '', '![scores](score_histogram.png)', '',
             '| id | name | instances | mean score | scores | flag | sheet |',
             '|---:|---|---:|---:|---|---|---|']
    for row in rows:
        mean = '' if row['mean_score'] is None else f'{row["mean_score"]:.2f}'
        sheet = f'[png]({row["contact_sheet"]})' if row['contact_sheet'] else ''
        name = html.escape(row['name']).replace('|', '\\|')
        lines.append(f'| {row["id"]} | {name} | {row["instances"]} | {mean} | '
                     f'`{sparkline(np.asarray(row["histogram"]))}` | {"LOW" if row["flagged"] else ""} | '
                     f'{sheet} |')
    return '\n'.join(lines) + '\n'


@register_stage
class InspectStage(Stage):
    """Stage ``inspect``: :func:`inspect_pool` of ``options.index`` (default: the work dir's pool)
    into ``options.out`` (relative to the work dir). Uses the vocabulary for names when there is one.

    Args:
        options (InspectOptions): index, output folder, flag threshold and sheet size.
        Others: see :class:`~pool_builder.stage.Stage`.
    """

    name = 'inspect'
    options_cls = InspectOptions

    def execute(self) -> InspectionReport:
        options = self.options
        index = Path(options.index).expanduser() if options.index else self.work.pool_index
        out = self.work.resolve(str(Path(options.out).expanduser()))
        # Leftovers of an interrupted report: only its own files in ``out`` (a folder others may
        # write, e.g. the work dir itself); contact_sheets/ is the report's alone.
        for name in REPORT_FILES:
            remove_temp_files(out, name)
        remove_temp_files(out / 'contact_sheets')
        return inspect_pool(index, out, self.vocabulary, options.min_instances, options.per_sheet)
