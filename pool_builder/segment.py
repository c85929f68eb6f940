"""Stage ``segment``: soft masks of every image with one or more segmenters, each in its own folder.

A mask file is written atomically, so an existing mask is a finished one. Batches are fixed slices of
the category's sorted images; a resumed run recomputes only batches with a missing mask (so the
model sees the same batches as in an uninterrupted run) and writes only the missing masks.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from tqdm import tqdm

from .errors import ConfigError
from .imaging import write_png
from .layout import WorkDir
from .manifest import read_category_manifest
from .prompts import DEFAULT_SCORE_TEMPLATE, score_text
from .records import remove_stale_temp_files
from .segmenters import Segmenter
from .sharding import Shard, mark_done
from .stage import FailureLog, StageSummary, get_logger, read_record_images
from .vocabulary import Category, Vocabulary


def segment_images(work: WorkDir, vocabulary: Vocabulary, segmenters: Sequence[Segmenter],
                   batch_size: int = 8, shard: Shard = Shard(), categories: Sequence[int] | None = None,
                   text_template: str = DEFAULT_SCORE_TEMPLATE,
                   logger: logging.Logger | None = None) -> StageSummary:
    """Write ``<work>/masks/<segmenter>/<safe name>/<stem>.png`` for every manifest image of this
    shard's categories. Text-prompted segmenters get ``text_template`` with the category name."""
    if batch_size < 1:
        raise ConfigError('segment: batch_size must be >= 1')
    names = [s.name for s in segmenters]
    if len(set(names)) != len(names):
        raise ConfigError(f'segment: segmenter names must be unique, got {names} (rename with name=...)')
    logger = logger or get_logger(work, shard)
    summary = StageSummary('segment')
    failures = FailureLog(work, 'segment', shard, summary, logger)
    todo = shard.select(vocabulary.subset(categories))
    logger.info(f'segment: shard {shard}, {len(todo)} categories, segmenters {names}')
    for category in tqdm(todo, desc='segment', unit='category', disable=None):
        try:
            _segment_category(work, category, segmenters, batch_size, score_text(category, text_template),
                              summary, failures)
        except Exception as exc:  # one category must not stop the run
            failures.record(f'category {category.id} ({category.name})', exc, with_traceback=True)
    mark_done(work, 'segment', shard)
    logger.info(str(summary))
    return summary


def _segment_category(work: WorkDir, category: Category, segmenters: Sequence[Segmenter],
                      batch_size: int, text: str, summary: StageSummary, failures: FailureLog) -> None:
    records = read_category_manifest(work, category.safe_name)
    for segmenter in segmenters:
        remove_stale_temp_files(work.mask_dir(segmenter.name, category.safe_name))
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        missing = {s.name: {r.key for r in batch
                            if not work.mask_path(s.name, category.safe_name, r.stem).is_file()}
                   for s in segmenters}
        summary.skipped += sum(len(batch) - len(m) for m in missing.values())
        if not any(missing.values()):
            continue
        images = read_record_images(work, batch, failures)
        readable = [r for r in batch if r.key in images]
        for segmenter in segmenters:
            if not missing[segmenter.name] or not readable:
                continue
            masks = segmenter([images[r.key] for r in readable], [text] * len(readable))
            for record, mask in zip(readable, masks):
                if record.key in missing[segmenter.name]:
                    write_png(work.mask_path(segmenter.name, category.safe_name, record.stem), mask)
                    summary.done += 1

