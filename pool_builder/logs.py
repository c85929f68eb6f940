"""The pool-builder logger: console plus one log file per process in the work dir."""
from __future__ import annotations

from mmengine.logging import MMLogger

from .layout import WorkDir
from .sharding import Shard


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
