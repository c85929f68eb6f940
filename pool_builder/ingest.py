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

from xpaste_mm.utils.io import atomic_write_bytes

from .errors import ConfigError, ImageReadError, VocabularyError
from .imaging import is_image_file, read_image_bgr
from .layout import WorkDir
from .manifest import ImageRecord, append_records, read_category_manifest
from .options import IngestOptions
from .sharding import Shard
from .stage import FailureLog, Stage, StageSummary, register_stage
from .vocabulary import Category, Vocabulary, safe_folder_name


@register_stage
class IngestStage(Stage):
    """Stage ``ingest``: add every image under ``<root>/<category folder>/`` to the manifest (only the
    folders of ``categories`` when given).

    Unknown folders raise a :class:`VocabularyError` listing them (or are skipped with a warning when
    ``skip_unknown_folders``); unreadable images are recorded as failures and skipped. Images
    already in the manifest are not added twice.

    Args:
        options (IngestOptions): image root, source, copy and unknown-folder policy.
        Others: see :class:`~pool_builder.stage.Stage`.
    """

    name = 'ingest'
    options_cls = IngestOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.options.root:
            raise ConfigError('ingest: "root" (folder with one sub-folder per category) is required')
        self.root = Path(self.options.root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f'ingest: image folder {self.root} does not exist (expected one '
                                    'sub-folder of images per category)')
        self.folders: dict[int, list[Path]] = {}  # category id -> its image folders, set by todo()

    def todo(self) -> list[Category]:
        self.folders, unknown = {}, []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith('.')):
            category = self.vocabulary.match_folder(folder.name)
            if category is None:
                unknown.append(folder.name)
            else:
                self.folders.setdefault(category.id, []).append(folder)
        if unknown and not self.options.skip_unknown_folders:
            raise VocabularyError(f'ingest: folders {unknown[:10]} under {self.root} match no category of '
                                  f'{self.vocabulary.source} (name them by category name or folder name, '
                                  'or skip them with skip_unknown_folders)')
        for name in unknown:
            self.logger.warning(f'ingest: skipping folder {self.root / name}: no such category')
        return self.shard.select([c for c in self.vocabulary.subset(self.categories) if c.id in self.folders])

    def temp_folders(self, category: Category) -> list[Path]:
        return [self.work.image_dir(category.safe_name)] if self.options.copy else []

    def process_category(self, category: Category) -> None:
        for folder in self.folders[category.id]:
            _ingest_folder(self.work, category, folder, self.options.source, self.options.copy, self.summary,
                           self.failures)


def ingest_images(work: WorkDir, vocabulary: Vocabulary, image_root: str | os.PathLike,
                  source: str = IngestOptions.source, copy: bool = IngestOptions.copy,
                  skip_unknown_folders: bool = IngestOptions.skip_unknown_folders, shard: Shard = Shard(),
                  logger: logging.Logger | None = None,
                  categories: Sequence[int] | None = None) -> StageSummary:
    """Run :class:`IngestStage` on the images under ``image_root``."""
    options = IngestOptions(root=str(image_root), source=source, copy=copy,
                            skip_unknown_folders=skip_unknown_folders)
    return IngestStage(work, vocabulary, options, shard, 'cpu', categories, logger).run()


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
