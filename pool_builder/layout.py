"""Where every stage reads and writes inside a work directory::

    <work>/vocabulary.json                       categories with their folder names (the mapping)
    <work>/manifest/<source>/<safe name>.jsonl   one record per image (see manifest.py)
    <work>/images/<safe name>/<stem>.png         generated (or copied) images, RGB
    <work>/masks/<segmenter>/<safe name>/<stem>.png   soft masks, uint8, image size
    <work>/scores/<segmenter>/<safe name>.jsonl  CLIP score + mask area per image
    <work>/pool/images/<category id>/<stem>.<segmenter>.png   RGBA crops of the kept instances
    <work>/pool/pool_index.npz                   the pool index (xpaste_mm PoolIndex)
    <work>/pool/build_summary.json               per-category bars, candidates and drop reasons
    <work>/failures/<stage>.<rank>-of-<n>.jsonl  categories/images that failed, with the error
    <work>/done/<stage>.<rank>-of-<n>            marker: that shard finished the stage
    <work>/locks/<stage>.<rank>-of-<n>.lock      held while a process writes that shard (locking.py)
    <work>/logs/                                 log files, one per process
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

MASK_SUFFIX = '.png'


@dataclass(frozen=True)
class WorkDir:
    """Paths of one pool-building work directory (``root`` is made absolute)."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, 'root', Path(root).expanduser().resolve())

    @property
    def vocabulary_file(self) -> Path:
        return self.root / 'vocabulary.json'

    @property
    def manifest_dir(self) -> Path:
        return self.root / 'manifest'

    def manifest_file(self, source: str, safe_name: str) -> Path:
        return self.manifest_dir / source / f'{safe_name}.jsonl'

    def image_dir(self, safe_name: str) -> Path:
        return self.root / 'images' / safe_name

    def mask_dir(self, segmenter: str, safe_name: str) -> Path:
        return self.root / 'masks' / segmenter / safe_name

    def mask_path(self, segmenter: str, safe_name: str, stem: str) -> Path:
        return self.mask_dir(segmenter, safe_name) / f'{stem}{MASK_SUFFIX}'

    @property
    def masks_root(self) -> Path:
        return self.root / 'masks'

    @property
    def scores_root(self) -> Path:
        return self.root / 'scores'

    def score_file(self, segmenter: str, safe_name: str) -> Path:
        return self.scores_root / segmenter / f'{safe_name}.jsonl'

    @property
    def pool_dir(self) -> Path:
        return self.root / 'pool'

    @property
    def pool_index(self) -> Path:
        from xpaste_mm.datasets.pool_index import INDEX_FILENAME

        return self.pool_dir / INDEX_FILENAME

    @property
    def build_summary(self) -> Path:
        return self.pool_dir / 'build_summary.json'

    @property
    def pool_images_root(self) -> Path:
        return self.pool_dir / 'images'

    def pool_image(self, category_id: int, stem: str, segmenter: str) -> Path:
        """The crop of image ``stem`` cut with ``segmenter`` (both in the name: a crop is only reused
        for the same image and mask)."""
        return self.pool_images_root / str(category_id) / f'{stem}.{segmenter}.png'

    def failures_file(self, stage: str, rank: int, world_size: int) -> Path:
        return self.root / 'failures' / f'{stage}.{rank}-of-{world_size}.jsonl'

    def done_marker(self, stage: str, rank: int, world_size: int) -> Path:
        return self.root / 'done' / f'{stage}.{rank}-of-{world_size}'

    def lock_file(self, stage: str, rank: int, world_size: int) -> Path:
        return self.root / 'locks' / f'{stage}.{rank}-of-{world_size}.lock'

    def stage_lock_files(self, stage: str) -> list[tuple[int, int, Path]]:
        """``(rank, world_size, path)`` of every lock file of ``stage`` present (:meth:`lock_file`)."""
        found = []
        for path in sorted((self.root / 'locks').glob(f'{glob.escape(stage)}.*-of-*.lock')):
            match = re.fullmatch(rf'{re.escape(stage)}\.(\d+)-of-(\d+)\.lock', path.name)
            if match:
                found.append((int(match[1]), int(match[2]), path))
        return found

    @property
    def log_dir(self) -> Path:
        return self.root / 'logs'

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to the root when inside it (portable work dirs), else absolute."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def resolve(self, stored: str) -> Path:
        """The absolute path of a path stored by :meth:`relative`."""
        path = Path(stored)
        return path if path.is_absolute() else self.root / path

    def segmenters_with_masks(self) -> list[str]:
        """Names of the segmenters that have a mask folder (sorted)."""
        root = self.masks_root
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def segmenters_with_scores(self) -> list[str]:
        """Names of the segmenters that have a score folder (sorted)."""
        root = self.scores_root
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
