"""Single writer per (stage, shard): a lock file in the work dir that works on shared filesystems.

``<work>/locks/<stage>.<rank>-of-<n>.lock`` is created atomically together with its content: a
private file is hard-linked to the lock's name, and ``link`` fails when the name exists, on local
disks, NFS and Lustre alike (no ``flock``). The JSON content names the holder: host, pid, start time
and a random token. While the holder runs, a daemon thread refreshes the file's mtime every
``timeout / 20`` seconds (the heartbeat, through a descriptor of the file, not its name). Another
process wanting the same lock gets a :class:`LockHeldError` naming the holder, unless the lock is
stale:

- the holder runs on this host and its pid is gone (killed, crashed), or
- the heartbeat is older than the timeout (a holder on another host, or a frozen one):
  ``POOL_BUILDER_LOCK_TIMEOUT`` seconds, default 600 (hosts' clocks must agree to well within it).

A stale lock is taken over with a warning: renamed away (atomic, so of two processes taking it over
one wins), checked to be the file judged stale, and removed; a fresh lock that a third process made
in between is linked back. The lock is released (the file removed) when the holder
leaves the ``with`` block; a holder killed with SIGKILL leaves it behind, stale.

Shards of one stage must share a shard count: 0/2 and 0/4 would both process category 0. Once it
holds its own lock, a shard looks for live locks of the same stage with another count and refuses
(:func:`hold_stage`); checking after taking the lock means two such runs cannot both miss each other.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .errors import PoolBuilderError

DEFAULT_LOCK_TIMEOUT_S = 600.0
LOCK_TIMEOUT_ENV = 'POOL_BUILDER_LOCK_TIMEOUT'


class LockHeldError(PoolBuilderError):
    """Another live process holds the lock."""


def lock_timeout() -> float:
    """Seconds without heartbeat after which a lock counts as stale (environment override)."""
    text = os.environ.get(LOCK_TIMEOUT_ENV)
    if not text:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(text)
    except ValueError as exc:
        raise PoolBuilderError(f'{LOCK_TIMEOUT_ENV}={text!r} is not a number of seconds') from exc
    if value <= 0:
        raise PoolBuilderError(f'{LOCK_TIMEOUT_ENV} must be > 0, got {value}')
    return value


def describe_holder(holder: dict) -> str:
    started = holder.get('started')
    when = datetime.fromtimestamp(started, timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC') \
        if isinstance(started, (int, float)) else 'an unknown time'
    return f'host {holder.get("host", "?")}, pid {holder.get("pid", "?")}, started {when}'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _read_lock_file(path: Path) -> tuple[dict, float] | None:
    """(holder JSON, mtime) of a lock file, None when there is none."""
    try:
        mtime = path.stat().st_mtime
        text = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:  # a holder killed between create and write
        holder = {}
    return (holder if isinstance(holder, dict) else {}), mtime


class FileLock:
    """An exclusive lock file (see the module docstring); use as a context manager."""

    def __init__(self, path: str | os.PathLike, what: str = '', timeout_s: float | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.path = Path(path)
        self.what = what or self.path.stem
        self.timeout_s = lock_timeout() if timeout_s is None else timeout_s
        self.logger = logger or logging.getLogger(__name__)
        self.token = secrets.token_hex(8)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._fd: int | None = None  # open on the lock file while held

    def _read_holder(self) -> tuple[dict, float] | None:
        """(holder JSON, mtime) of the current lock file, None when there is none."""
        return _read_lock_file(self.path)

    def _stale_reason(self, holder: dict, mtime: float) -> str | None:
        age = time.time() - mtime
        if holder.get('host') == socket.gethostname() and isinstance(holder.get('pid'), int) \
                and not _pid_alive(holder['pid']):
            return f'its process {holder["pid"]} is gone'
        if age > self.timeout_s:
            return f'no heartbeat for {age:.0f} s (timeout {self.timeout_s:.0f} s)'
        return None

    def live_holder(self) -> dict | None:
        """The holder of the lock file when there is one and it is not stale, else None."""
        found = self._read_holder()
        if found is None or self._stale_reason(*found) is not None:
            return None
        return found[0]

    def acquire(self) -> None:
        """Take the lock or raise :class:`LockHeldError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            if self._create():
                self._start_heartbeat()
                return
            found = self._read_holder()
            if found is None:
                continue  # released meanwhile
            holder, mtime = found
            reason = self._stale_reason(holder, mtime)
            if reason is None:
                raise LockHeldError(f'{self.what} is being written by another process '
                                    f'({describe_holder(holder)}); lock file {self.path}. Wait for it to '
                                    'finish (a dead holder on another host is taken over after '
                                    f'{self.timeout_s:.0f} s without heartbeat).')
            if self._remove_stale(holder):
                self.logger.warning(f'took over the stale lock {self.path} of {describe_holder(holder)}: '
                                    f'{reason}')
        raise LockHeldError(f'could not take the lock {self.path}: it keeps changing hands')

    def _remove_stale(self, holder: dict) -> bool:
        """Remove the lock file judged stale, unless another process took it over meanwhile.

        The file is renamed away first (atomic: of two processes removing it, one wins), then its
        token is compared with the stale holder's: a lock that a third process created between the
        judgement and the rename is linked back (its holder's heartbeat refreshes the inode through a
        descriptor, so it never noticed). True when the stale file was removed.
        """
        moved = self.path.with_name(f'.{self.path.name}.stale.{self.token}')
        try:
            os.rename(self.path, moved)
        except FileNotFoundError:
            return False
        try:
            mine = _read_lock_file(moved)
            if mine is not None and mine[0].get('token') == holder.get('token'):
                return True
            try:
                os.link(moved, self.path)
            except FileExistsError:  # yet another process created a lock at the name meanwhile
                pass
            return False
        finally:
            moved.unlink(missing_ok=True)

    def _create(self) -> bool:
        """Create the lock file with its complete content, atomically: write a private file, then
        hard-link it to the lock's name (``link`` fails when the name exists, on NFS too, where an
        ``O_EXCL`` create is not reliable everywhere). False when another lock file exists."""
        content = json.dumps(dict(host=socket.gethostname(), pid=os.getpid(), started=time.time(),
                                  token=self.token))
        private = self.path.with_name(f'.{self.path.name}.{self.token}')
        private.write_text(content, encoding='utf-8')
        fd = os.open(private, os.O_RDONLY)  # the heartbeat's handle on this inode, whatever its name
        try:
            os.link(private, self.path)
            made = True
        except FileExistsError:
            made = False
        except OSError:  # NFS: the reply may be lost although the link was made
            made = private.stat().st_nlink == 2
        finally:
            private.unlink(missing_ok=True)
        if made:
            self._fd = fd
        else:
            os.close(fd)
        return made

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        interval = max(0.05, self.timeout_s / 20)

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    os.utime(self._fd)
                except OSError:
                    return
        self._heartbeat = threading.Thread(target=beat, name=f'lock-heartbeat:{self.path.name}', daemon=True)
        self._heartbeat.start()

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still ours."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        found = self._read_holder()
        if found is not None and found[0].get('token') == self.token:
            self.path.unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


_HELD: dict[Path, FileLock] = {}


def hold_stage(work, stage: str, shard, logger: logging.Logger | None = None):
    """:func:`hold` the lock of ``stage`` for ``shard`` (a :class:`~pool_builder.sharding.Shard`) in
    ``work`` (a :class:`~pool_builder.layout.WorkDir`), and refuse while shards of the same stage run
    with another shard count (their categories overlap this shard's)."""
    def check_shard_count() -> None:
        for rank, world_size, path in work.stage_lock_files(stage):
            holder = FileLock(path, logger=logger).live_holder() if world_size != shard.world_size else None
            if holder is not None:
                raise LockHeldError(
                    f'stage {stage} of {work.root} is being run as shard {rank}/{world_size} '
                    f'({describe_holder(holder)}; lock file {path}), while this is shard {shard}: shards '
                    'of different counts overlap. Run one shard count at a time (wait for those shards to '
                    'finish, or stop them).')

    return hold(work.lock_file(stage, shard.rank, shard.world_size),
                f'stage {stage} (shard {shard}) of {work.root}', logger, check_shard_count)


@contextmanager
def hold(path: str | os.PathLike, what: str = '', logger: logging.Logger | None = None,
         check: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock at ``path`` for the block; re-entrant within this process (a run that already
    holds the locks of its stages passes them on to the stages). ``check`` runs once the lock is
    held, so two processes checking each other cannot both miss the other; it raises to refuse."""
    path = Path(path).resolve()
    if path in _HELD:
        yield
        return
    lock = FileLock(path, what, logger=logger)
    with lock:
        if check is not None:
            check()
        _HELD[path] = lock
        try:
            yield
        finally:
            del _HELD[path]
