"""Stage ``segment``: soft masks of every image with one or more segmenters, each in its own folder.

A mask file is written atomically, so an existing mask is a finished one. Batches are fixed slices of
the category's sorted images; a resumed run recomputes only batches with a missing mask (so the
model sees the same batches as in an uninterrupted run) and writes only the missing masks.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError
from .imaging import write_png
from .layout import WorkDir
from .manifest import read_category_manifest
from .options import DEFAULT_SCORE_TEMPLATE, SegmentOptions
from .prompts import score_text
from .segmenters import Segmenter, build_segmenter
from .sharding import Shard
from .stage import Stage, StageSummary, read_record_images, register_stage
from .vocabulary import Category, Vocabulary


@register_stage
class SegmentStage(Stage):
    """Stage ``segment``: ``<work>/masks/<segmenter>/<safe name>/<stem>.png`` for every manifest image
    of this shard's categories. Text-prompted segmenters get ``text_template`` with the category name.

    Args:
        options (SegmentOptions): segmenter specs and batch size.
        segmenters (Sequence[Segmenter] | None): ready segmenters (default: built from
            ``options.segmenters`` on ``device``).
        text_template (str): the text of text-prompted segmenters.
        Others: see :class:`~pool_builder.stage.Stage`.
    """

    name = 'segment'
    options_cls = SegmentOptions

    def __init__(self, *args, segmenters: Sequence[Segmenter] | None = None,
                 text_template: str = DEFAULT_SCORE_TEMPLATE, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.segmenters = list(segmenters) if segmenters is not None else None
        self.text_template = text_template

    def prepare(self, todo: Sequence[Category]) -> None:
        if self.segmenters is None:
            self.segmenters = [build_segmenter(spec, self.device) for spec in self.options.segmenters]
        names = [s.name for s in self.segmenters]
        if len(set(names)) != len(names):
            raise ConfigError(f'segment: segmenter names must be unique, got {names} (rename with name=...)')
        self.logger.info(f'segment: shard {self.shard}, {len(todo)} categories, segmenters {names}')

    def temp_folders(self, category: Category) -> list[Path]:
        return [self.work.mask_dir(s.name, category.safe_name) for s in self.segmenters]

    def process_category(self, category: Category) -> None:
        work, summary, batch_size = self.work, self.summary, self.options.batch_size
        text = score_text(category, self.text_template)
        records = read_category_manifest(work, category.safe_name)
        for start in range(0, len(records), batch_size):
            batch = records[start:start + batch_size]
            missing = {s.name: {r.key for r in batch
                                if not work.mask_path(s.name, category.safe_name, r.stem).is_file()}
                       for s in self.segmenters}
            summary.skipped += sum(len(batch) - len(m) for m in missing.values())
            if not any(missing.values()):
                continue
            images = read_record_images(work, batch, self.failures)
            readable = [r for r in batch if r.key in images]
            for segmenter in self.segmenters:
                if not missing[segmenter.name] or not readable:
                    continue
                masks = segmenter([images[r.key] for r in readable], [text] * len(readable))
                for record, mask in zip(readable, masks):
                    if record.key in missing[segmenter.name]:
                        write_png(work.mask_path(segmenter.name, category.safe_name, record.stem), mask)
                        summary.done += 1


def segment_images(work: WorkDir, vocabulary: Vocabulary, segmenters: Sequence[Segmenter],
                   batch_size: int = SegmentOptions.batch_size, shard: Shard = Shard(),
                   categories: Sequence[int] | None = None, text_template: str = DEFAULT_SCORE_TEMPLATE,
                   logger: logging.Logger | None = None) -> StageSummary:
    """Run :class:`SegmentStage` with ready ``segmenters``."""
    options = SegmentOptions(segmenters=tuple(s.name for s in segmenters), batch_size=batch_size)
    return SegmentStage(work, vocabulary, options, shard, 'cpu', categories, logger, segmenters=segmenters,
                        text_template=text_template).run()
