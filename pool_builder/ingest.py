"""Stage ``ingest``: bring your own or retrieved images (one folder per category) into the manifest.

Folders are matched to categories by folder name, raw name, or name with spaces and underscores
exchanged (case-insensitive). Images are referenced in place (or copied with ``copy=True``); each
one is decoded once so that corrupt files are reported here rather than in a later stage.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from xpaste_mm.utils.io import atomic_write_bytes

from .errors import ConfigError, ImageReadError, VocabularyError
from .imaging import is_image_file, read_image_bgr
from .layout import WorkDir
from .manifest import ImageRecord, append_records, read_category_manifest
from .sharding import Shard, mark_done
from .stage import FailureLog, StageSummary, get_logger
from .vocabulary import Category, Vocabulary, safe_folder_name

INGEST_SOURCES = ('retrieved', 'own')


def ingest_images(work: WorkDir, vocabulary: Vocabulary, image_root: str | os.PathLike,
                  source: str = 'retrieved', copy: bool = False, skip_unknown_folders: bool = False,
                  shard: Shard = Shard(), logger: logging.Logger | None = None,
                  categories: Sequence[int] | None = None) -> StageSummary:
    """Add every image under ``image_root/<category folder>/`` to the manifest (only the folders of
    ``categories`` when given).

    Unknown folders raise a :class:`VocabularyError` listing them (or are skipped with a warning when
    ``skip_unknown_folders``); unreadable images are recorded as failures and skipped. Images
    already in the manifest are not added twice.
    """
    if source not in INGEST_SOURCES:
        raise ConfigError(f'ingest: source must be one of {INGEST_SOURCES}, got {source!r}')
    root = Path(image_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f'ingest: image folder {root} does not exist (expected one sub-folder '
                                'of images per category)')
    logger = logger or get_logger(work, shard)
    summary = StageSummary('ingest')
    failures = FailureLog(work, 'ingest', shard, summary, logger)
    folders: dict[int, list[Path]] = {}
    unknown = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.')):
        category = vocabulary.match_folder(folder.name)
        if category is None:
            unknown.append(folder.name)
        else:
            folders.setdefault(category.id, []).append(folder)
    if unknown and not skip_unknown_folders:
        raise VocabularyError(f'ingest: folders {unknown[:10]} under {root} match no category of '
                              f'{vocabulary.source} (name them by category name or folder name, or '
                              'skip them with skip_unknown_folders)')
    for name in unknown:
        logger.warning(f'ingest: skipping folder {root / name}: no such category')
    todo = shard.select([c for c in vocabulary.subset(categories) if c.id in folders])
    for category in tqdm(todo, desc='ingest', unit='category', disable=None):
        for folder in folders[category.id]:
            _ingest_folder(work, category, folder, source, copy, summary, failures)
    mark_done(work, 'ingest', shard)
    logger.info(str(summary))
    return summary


def _ingest_folder(work: WorkDir, category: Category, folder: Path, source: str, copy: bool,
                   summary: StageSummary, failures: FailureLog) -> None:
    existing = read_category_manifest(work, category.safe_name)
    known_origins = {r.origin for r in existing if r.source == source}
    used_stems = {r.stem for r in existing}
    records = []
    for path in sorted(p for p in folder.iterdir() if is_image_file(p)):
        origin = str(path.resolve())
        if origin in known_origins:
            summary.skipped += 1
            continue
        try:
            read_image_bgr(path)
        except ImageReadError as exc:
            failures.record(f'image {path}', exc)
            continue
        stem = _unique_stem(f'{source}_{safe_folder_name(path.stem)}', used_stems)
        used_stems.add(stem)
        target = path
        if copy:
            target = work.image_dir(category.safe_name) / f'{stem}{path.suffix.lower()}'
            atomic_write_bytes(target, path.read_bytes())
        records.append(ImageRecord(
            key=f'{category.safe_name}/{stem}', category_id=category.id, name=category.name,
            safe_name=category.safe_name, stem=stem, image=work.relative(target), source=source,
            origin=origin))
    append_records(work, source, category.safe_name, records)
    summary.done += len(records)


def _unique_stem(stem: str, used: set[str]) -> str:
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f'{stem}-{n}'
    return candidate
