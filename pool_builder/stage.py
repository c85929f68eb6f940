"""The stage base class and registry, and what every stage shares: summary, failure log, logger.

A stage is a class registered in :data:`STAGES` (:func:`register_stage`) by the module named after
it (``pool_builder/<name>.py``); :func:`build_stage` imports that module on first use, so the command
line never loads torch or mmdet for a stage that does not run. :class:`Stage` owns what is the same
for all of them: the per-category loop over this shard's categories, clearing the temporary files of
interrupted writes, the failure log, the single-writer lock of (stage, shard) and the done marker.
Which stages are sharded and which write the work dir is stated once, in ``options.py``. A stage
implements :meth:`Stage.process_category` (or :meth:`Stage.execute` when it works on the whole work
dir).
"""
from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from mmengine.registry import Registry
from tqdm import tqdm

from xpaste_mm.utils.io import remove_temp_files

from . import locking
from .errors import ConfigError, ImageReadError
from .imaging import read_image_rgb
from .layout import WorkDir
from .logs import get_logger
from .manifest import ImageRecord
from .options import STAGE_ORDER, WORK_DIR_STAGES, options_from_config
from .records import append_jsonl
from .sharding import Shard, mark_done, stage_shard
from .vocabulary import Category, Vocabulary

STAGES = Registry('pool_builder stage')


@dataclass
class StageSummary:
    """Counts of one stage run on one shard. ``failures`` hold ``{"what", "error"}`` dicts."""

    stage: str
    done: int = 0
    skipped: int = 0
    failures: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        return (f'{self.stage}: {self.done} done, {self.skipped} already complete, '
                f'{len(self.failures)} failed')


class FailureLog:
    """Appends failures of one stage/shard to ``<work>/failures/`` and keeps them in the summary."""

    def __init__(self, work: WorkDir, stage: str, shard: Shard, summary: StageSummary,
                 logger: logging.Logger) -> None:
        self.path = work.failures_file(stage, shard.rank, shard.world_size)
        self.summary = summary
        self.logger = logger

    def record(self, what: str, error: BaseException | str, with_traceback: bool = False) -> None:
        message = error if isinstance(error, str) else f'{type(error).__name__}: {error}'
        entry = dict(what=what, error=message, time=time.time())
        if with_traceback and isinstance(error, BaseException):
            entry['traceback'] = ''.join(traceback.format_exception(error))
        append_jsonl(self.path, [entry])
        self.summary.failures.append(entry)
        self.logger.warning(f'{self.summary.stage}: {what} failed: {message}')


def read_record_images(work: WorkDir, records: Sequence[ImageRecord],
                       failures: FailureLog) -> dict[str, np.ndarray]:
    """``{key: RGB image}`` of the records; unreadable images are recorded as failures and left out."""
    images = {}
    for record in records:
        try:
            images[record.key] = read_image_rgb(work.resolve(record.image))
        except ImageReadError as exc:
            failures.record(f'image {record.key}', exc)
    return images


class Stage:
    """Base of the pool-building stages.

    Args:
        work (WorkDir): the work directory.
        vocabulary (Vocabulary | None): the categories (may be None for ``stats`` and ``inspect``,
            which do not write the work dir).
        options: the stage's options dataclass (``options_cls``), e.g. a config section.
        shard (Shard): this process's share of the categories (sharded stages only).
        device (str): torch device of the stages that run models.
        categories (Sequence[int] | None): only these category ids.
        logger (logging.Logger | None): default: :func:`get_logger` of the work dir.
    """

    #: registry name, config section and module name
    name: ClassVar[str] = ''
    #: the options dataclass of the stage's config section
    options_cls: ClassVar[type]

    def __init__(self, work: WorkDir, vocabulary: Vocabulary | None, options: Any, shard: Shard = Shard(),
                 device: str = 'cpu', categories: Sequence[int] | None = None,
                 logger: logging.Logger | None = None) -> None:
        #: writes the work dir: needs the vocabulary, holds the (stage, shard) lock, leaves a done marker
        self.writes_work_dir = self.name in WORK_DIR_STAGES
        if self.writes_work_dir and vocabulary is None:
            raise ConfigError(f'{self.name}: a vocabulary (category file) is required')
        self.work = work
        self.vocabulary = vocabulary
        self.options = options
        self.shard = stage_shard(self.name, shard)
        self.device = device
        self.categories = categories
        self.logger = logger or get_logger(work, self.shard)
        self.summary = StageSummary(self.name)
        self.failures = FailureLog(work, self.name, self.shard, self.summary, self.logger)

    def run(self) -> Any:
        """Run the stage under its lock; returns its summary (``.ok`` False when something failed)."""
        if not self.writes_work_dir:
            return self.execute()
        with locking.hold_stage(self.work, self.name, self.shard, self.logger):
            summary = self.execute()
            mark_done(self.work, self.name, self.shard)
        self.logger.info(str(summary))
        return summary

    def execute(self) -> Any:
        """The per-category loop: a failing category is recorded and the run goes on."""
        todo = self.todo()
        self.prepare(todo)
        for category in tqdm(todo, desc=self.name, unit='category', disable=None):
            try:
                for folder in self.temp_folders(category):
                    remove_temp_files(folder)
                self.process_category(category)
            except Exception as exc:  # one category must not stop the run
                self.failures.record(f'category {category.id} ({category.name})', exc, with_traceback=True)
        return self.summary

    def todo(self) -> list[Category]:
        """This shard's categories (every ``world_size``-th of the id-sorted selection)."""
        return self.shard.select(self.vocabulary.subset(self.categories))

    def prepare(self, todo: Sequence[Category]) -> None:
        """Called once before the loop (load models, plan work)."""

    def temp_folders(self, category: Category) -> list[Path]:
        """Folders of ``category`` that only this stage writes; leftover temporary files of
        interrupted atomic writes in them are deleted before the category is processed."""
        return []

    def process_category(self, category: Category) -> None:
        """Do the work of one category, counting into ``self.summary``."""
        raise NotImplementedError(f'{type(self).__name__} must implement process_category or execute')


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator: register a :class:`Stage` subclass in :data:`STAGES` under its ``name``."""
    STAGES.register_module(name=cls.name, module=cls)
    return cls


def stage_class(name: str) -> type[Stage]:
    """The registered class of stage ``name`` (imports ``pool_builder.<name>`` on first use)."""
    if name not in STAGE_ORDER:
        raise ConfigError(f'unknown stage {name!r}; stages are {list(STAGE_ORDER)}')
    if name not in STAGES.module_dict:
        import_module(f'{__package__}.{name}')
    return STAGES.get(name)


def build_stage(name: str, work: WorkDir, vocabulary: Vocabulary | None, section: dict | None,
                **kwargs: Any) -> Stage:
    """Instantiate stage ``name`` from its config section (``kwargs``: shard, device, categories,
    logger)."""
    cls = stage_class(name)
    return cls(work, vocabulary, options_from_config(cls.options_cls, section, name), **kwargs)
