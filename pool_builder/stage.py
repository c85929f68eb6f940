"""What every stage shares: its summary, the failure log and the logger."""
from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from mmengine.logging import MMLogger

from .errors import ConfigError, ImageReadError
from .imaging import read_image_rgb
from .layout import WorkDir
from .manifest import ImageRecord
from .records import append_jsonl
from .sharding import Shard


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


def get_logger(work: WorkDir | None = None, shard: Shard = Shard(),
               log_level: str = 'INFO') -> MMLogger:
    """The pool-builder logger of this process (console + ``<work>/logs/<rank>.log``)."""
    name = f'pool_builder:{work.root if work else "console"}:{shard.rank}'
    if MMLogger.check_instance_created(name):
        return MMLogger.get_instance(name)
    log_file = None
    if work is not None:
        work.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = str(work.log_dir / f'pool_builder.{shard.rank}-of-{shard.world_size}.log')
    return MMLogger.get_instance(name, logger_name='pool_builder', log_file=log_file,
                                 log_level=log_level, file_mode='a')


def options_from_config(cls, config: dict | None, section: str):
    """Build an options dataclass ``cls`` from a config section, naming unknown keys."""
    config = dict(config or {})
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f'{section}: unknown option(s) {unknown}; allowed: {sorted(allowed)}')
    return cls(**config)
