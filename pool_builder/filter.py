"""Stage ``filter``: select instances by X-Paste's rule, cut RGBA crops in parallel, write the index.

Outputs: ``<work>/pool/images/<category id>/<stem>.<segmenter>.png`` (RGBA), ``pool_index.npz``
(:class:`xpaste_mm.datasets.PoolIndex`), ``build_summary.json`` (per category: candidates, bar,
best score, kept, drops by reason) and optionally X-Paste's pool JSON. Crops newer than their inputs
are reused; crops of instances no longer selected are deleted.
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from xpaste_mm.datasets.crop_store import CropLevels, levels_paths, write_crop_levels
from xpaste_mm.datasets.pool_index import PoolIndex
from xpaste_mm.utils.io import atomic_write_json, remove_temp_files

from .crop import NO_CROP_REASONS, CropJob, CropResult, init_worker, run_crop_job
from .errors import PoolBuilderError
from .layout import WorkDir
from .manifest import ImageRecord, read_manifest
from .options import FilterOptions, FilterRule
from .records import read_jsonl
from .selection import CategorySelection, select_category
from .stage import Stage, register_stage
from .vocabulary import Category, Vocabulary


@dataclass
class BuildSummary:
    """Result of the filter stage; ``categories`` are the rows of ``build_summary.json``."""

    index_path: Path
    kept: int = 0
    candidates: int = 0
    dropped: Counter = field(default_factory=Counter)
    categories: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """False when some selected instance could not be cropped (unreadable files)."""
        return not self.errors

    def __str__(self) -> str:
        drops = ', '.join(f'{k} {v}' for k, v in sorted(self.dropped.items())) or 'none'
        return f'filter: kept {self.kept} of {self.candidates} candidates (dropped: {drops})'


def collect_candidates(work: WorkDir, records: Sequence[ImageRecord],
                       segmenters: Sequence[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{image key: {segmenter: (score, area)}}`` of one category from the score files."""
    if not records:
        return {}
    safe_name = records[0].safe_name
    keys = {r.key for r in records}
    candidates: dict[str, dict[str, tuple[float, float]]] = {}
    for name in segmenters:
        for row in read_jsonl(work.score_file(name, safe_name)):
            if row.get('key') in keys and row.get('score') is not None:
                candidates.setdefault(row['key'], {})[name] = (float(row['score']), float(row['area']))
    return candidates


@register_stage
class FilterStage(Stage):
    """Stage ``filter``: X-Paste's rule over every category of the work dir, RGBA crops in
    ``options.workers`` processes, the pool index and ``build_summary.json`` (not sharded: it is I/O
    bound and cheap). Segmenter ties go to the first of ``options.segmenters`` (default: every
    segmenter with scores, sorted by name).

    Args:
        options (FilterOptions): the rule, workers, segmenter order, overwrite and X-Paste JSON export.
        Others: see :class:`~pool_builder.stage.Stage`.
    """

    name = 'filter'
    options_cls = FilterOptions

    def execute(self) -> BuildSummary:
        work, vocabulary, options, logger = self.work, self.vocabulary, self.options, self.logger
        rule, overwrite, workers = options.rule, options.overwrite, options.workers or os.cpu_count() or 1
        _remove_temp_files(work, options.xpaste_json)
        order = list(options.segmenters) if options.segmenters else work.segmenters_with_scores()
        if not order:
            raise PoolBuilderError(f'{work.root}: no CLIP scores found under {work.scores_root}; run the '
                                   'segment and score stages first')
        manifest = read_manifest(work)
        summary = BuildSummary(index_path=work.pool_index)
        jobs: list[CropJob] = []
        rows: dict[int, dict] = {}
        for category in vocabulary:
            records = manifest.get(category.safe_name, [])
            if not records:
                continue
            by_key = {r.key: r for r in records}
            selection = select_category(collect_candidates(work, records, order), rule, order)
            rows[category.id] = _summary_row(category, len(records), selection)
            summary.candidates += len(records)
            summary.dropped.update(rows[category.id]['dropped'])
            for choice in selection.kept:
                record = by_key[choice.key]
                jobs.append(CropJob(
                    key=choice.key, category_id=category.id, image=str(work.resolve(record.image)),
                    mask=str(work.mask_path(choice.segmenter, category.safe_name, record.stem)),
                    output=str(work.pool_image(category.id, record.stem, choice.segmenter)),
                    segmenter=choice.segmenter, score=choice.score, area=choice.area, source=record.source,
                    reuse=not overwrite))
        logger.info(f'filter: {len(jobs)} of {summary.candidates} candidates pass the rule; cropping with '
                    f'{workers} worker(s)')
        pool_records = []
        crops_changed = False
        for result in _run_jobs(jobs, workers):
            row = rows[result.job.category_id]
            if result.error is None:
                crops_changed |= not result.reused
                job = result.job
                pool_records.append(dict(category_id=job.category_id, path=job.output, source=job.source,
                                         segmenter=job.segmenter, score=job.score, area=job.area,
                                         width=result.width, height=result.height))
                row['kept'] += 1
                continue
            reason = result.error if result.error in NO_CROP_REASONS else 'read_error'
            row['dropped'][reason] = row['dropped'].get(reason, 0) + 1
            summary.dropped[reason] += 1
            if reason == 'read_error':
                summary.errors.append(f'{result.job.key}: {result.error}')
                logger.warning(f'filter: {result.job.key}: {result.error}')
        summary.kept = len(pool_records)
        summary.categories = [rows[k] for k in sorted(rows)]
        index = PoolIndex.from_records(pool_records, root=work.pool_dir, info=dict(
            rule=asdict(rule), segmenters=order, vocabulary=vocabulary.source))
        index.save(work.pool_index)
        # Levels are rewritten only when a crop was (re)written or they do not match the index: a rerun
        # that changes nothing decodes no crop.
        if options.crop_levels and (crops_changed or CropLevels.open(work.pool_index, index) is None):
            write_crop_levels(work.pool_index, workers=workers, context=crop_worker_context())
        _remove_stale_crops(work, {str(Path(r['path'])) for r in pool_records})
        atomic_write_json(work.build_summary, dict(
            rule=asdict(rule), segmenters=order, kept=summary.kept, candidates=summary.candidates,
            dropped=dict(summary.dropped), categories=summary.categories), indent=1)
        if options.xpaste_json:
            index.to_xpaste_json(work.resolve(options.xpaste_json), category_ids=vocabulary.ids)
        return summary


def build_pool(work: WorkDir, vocabulary: Vocabulary, rule: FilterRule = FilterRule(),
               segmenters: Sequence[str] | None = None, workers: int = 1, overwrite: bool = False,
               xpaste_json: str | os.PathLike | None = None,
               logger: logging.Logger | None = None) -> BuildSummary:
    """Run :class:`FilterStage` with these options."""
    options = FilterOptions(**asdict(rule), workers=workers, segmenters=segmenters, overwrite=overwrite,
                            xpaste_json=None if xpaste_json is None else str(xpaste_json))
    return FilterStage(work, vocabulary, options, logger=logger).run()


def _summary_row(category: Category, candidates: int, selection: CategorySelection) -> dict:
    dropped = Counter(reason for _, reason in selection.dropped)
    unscored = candidates - len(selection.kept) - len(selection.dropped)
    if unscored:
        dropped['unscored'] = unscored
    return dict(id=category.id, name=category.name, candidates=candidates,
                bar=None if math.isnan(selection.bar) else round(selection.bar, 4),
                best=None if math.isnan(selection.best) else round(selection.best, 4),
                selected=len(selection.kept), kept=0, dropped=dict(dropped))


def _run_jobs(jobs: list[CropJob], workers: int) -> Iterator[CropResult]:
    progress = dict(total=len(jobs), desc='filter', unit='img', disable=None)
    if workers <= 1 or len(jobs) < 2:
        yield from tqdm(map(run_crop_job, jobs), **progress)
        return
    chunksize = max(1, min(64, len(jobs) // (workers * 8)))
    with crop_worker_context().Pool(workers, initializer=init_worker) as pool:
        yield from tqdm(pool.imap_unordered(run_crop_job, jobs, chunksize=chunksize), **progress)


def crop_worker_context():
    """Never plain fork (unsafe once torch/CUDA threads exist). ``forkserver`` imports the crop
    module once in a clean server process and forks workers from it; ``spawn`` elsewhere."""
    if 'forkserver' in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context('forkserver')
        context.set_forkserver_preload(['pool_builder.crop'])
        return context
    return multiprocessing.get_context('spawn')


def _remove_temp_files(work: WorkDir, xpaste_json: str | None) -> None:
    """Temporary files of an interrupted filter: index, summary, crops and the X-Paste JSON."""
    remove_temp_files(work.pool_dir, work.pool_index.name)
    remove_temp_files(work.pool_dir, work.build_summary.name)
    for levels_file in levels_paths(work.pool_index):
        remove_temp_files(work.pool_dir, levels_file.name)
    if work.pool_images_root.is_dir():
        for folder in work.pool_images_root.iterdir():
            remove_temp_files(folder)
    if xpaste_json:
        path = work.resolve(str(xpaste_json))
        remove_temp_files(path.parent, path.name)


def _remove_stale_crops(work: WorkDir, keep: set[str]) -> None:
    root = work.pool_images_root
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if folder.is_dir():
            for path in folder.iterdir():
                if path.suffix == '.png' and str(path) not in keep:
                    path.unlink(missing_ok=True)
