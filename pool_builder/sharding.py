"""Work sharding across processes and nodes, and device selection.

A shard is ``(rank, world_size)``: rank ``r`` owns every category whose position in the id-sorted
vocabulary is ``r`` modulo ``world_size``. The shard comes from ``--shard i/n`` or from the standard
launchers' environment (torchrun: ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; SLURM: ``SLURM_PROCID``/
``SLURM_NTASKS``/``SLURM_LOCALID``). Shards never share an output file, so no process group is needed
(a lock per (stage, shard) only stops a second process from running the same shard, ``locking.py``);
finished shards leave a marker file that a later stage can wait for.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import ConfigError
from .layout import WorkDir
from .options import SHARDED_STAGES


@dataclass(frozen=True)
class Shard:
    """This process's share of the work; ``local_rank`` picks the GPU on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(f'invalid shard {self.rank}/{self.world_size}: need 0 <= rank < world size')

    def owns(self, position: int) -> bool:
        return position % self.world_size == self.rank

    def select(self, items: Sequence) -> list:
        """The items (categories in id order) this shard processes."""
        return [item for position, item in enumerate(items) if self.owns(position)]

    def __str__(self) -> str:
        return f'{self.rank}/{self.world_size}'


def stage_shard(stage: str, shard: Shard) -> Shard:
    """The shard ``stage`` runs (and locks) as: ``shard`` if the stage is sharded, else the whole 0/1."""
    return shard if stage in SHARDED_STAGES else Shard()


def parse_shard(spec: str) -> Shard:
    """``"i/n"`` -> ``Shard(i, n)``."""
    try:
        rank, world = (int(x) for x in spec.split('/'))
    except ValueError as exc:
        raise ConfigError(f'--shard expects "INDEX/COUNT" such as 0/4, got {spec!r}') from exc
    return Shard(rank, world, local_rank=0)


def resolve_shard(spec: str | None = None, environ: Mapping[str, str] | None = None) -> Shard:
    """The shard from ``spec`` (``"i/n"``), else torchrun's or SLURM's environment, else 0/1."""
    environ = os.environ if environ is None else environ
    if spec:
        shard = parse_shard(spec)
        return Shard(shard.rank, shard.world_size, _env_int(environ, 'LOCAL_RANK', 'SLURM_LOCALID'))
    for rank_var, world_var, local_var in (('RANK', 'WORLD_SIZE', 'LOCAL_RANK'),
                                           ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID')):
        if rank_var in environ and world_var in environ:
            return Shard(_env_int(environ, rank_var), _env_int(environ, world_var),
                         _env_int(environ, local_var))
    return Shard()


def _env_int(environ: Mapping[str, str], *names: str) -> int:
    for name in names:
        if name in environ:
            try:
                return int(environ[name])
            except ValueError as exc:
                raise ConfigError(f'environment variable {name}={environ[name]!r} is not an '
                                  'integer') from exc
    return 0


def resolve_device(device: str | None, shard: Shard = Shard()) -> str:
    """A torch device string. ``None``/``"auto"``: CUDA when available, else CPU. ``"cuda"`` with
    several visible GPUs binds this process to ``cuda:<local_rank mod count>``."""
    import torch

    device = (device or 'auto').lower()
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ConfigError(f'device {device!r} requested but CUDA is not available (use --device cpu)')
        if device == 'cuda':
            device = f'cuda:{shard.local_rank % torch.cuda.device_count()}'
    return device


def resolve_run_id(environ: Mapping[str, str] | None = None) -> str:
    """An id shared by all processes of one launch: ``POOL_BUILDER_RUN_ID``, torchrun's
    ``TORCHELASTIC_RUN_ID`` or SLURM's ``SLURM_JOB_ID`` (+ step); '' when there is none."""
    environ = os.environ if environ is None else environ
    if environ.get('POOL_BUILDER_RUN_ID'):
        return environ['POOL_BUILDER_RUN_ID']
    if environ.get('TORCHELASTIC_RUN_ID'):
        return 'torchrun-' + environ['TORCHELASTIC_RUN_ID']
    if environ.get('SLURM_JOB_ID'):
        return f'slurm-{environ["SLURM_JOB_ID"]}.{environ.get("SLURM_STEP_ID", "0")}'
    return ''


def mark_done(work: WorkDir, stage: str, shard: Shard) -> None:
    """Record that ``shard`` finished ``stage`` in this launch (the marker holds the run id)."""
    from xpaste_mm.utils.io import atomic_write_text, remove_temp_files

    marker = work.done_marker(stage, shard.rank, shard.world_size)
    remove_temp_files(marker.parent, marker.name)  # of an interrupted earlier marker write
    atomic_write_text(marker, resolve_run_id() + '\n')


def _marker_matches(path, run_id: str) -> bool:
    try:
        return path.read_text(encoding='utf-8').strip() == run_id
    except FileNotFoundError:
        return False


def wait_for_shards(work: WorkDir, stage: str, world_size: int, run_id: str,
                    timeout_s: float = 86400.0, poll_s: float = 10.0) -> None:
    """Block until every shard of ``stage`` left its marker for launch ``run_id`` (a barrier over
    the shared filesystem; markers of earlier launches do not count)."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = [r for r in range(world_size)
                   if not _marker_matches(work.done_marker(stage, r, world_size), run_id)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f'shards {missing} of {world_size} did not finish stage {stage!r} within '
                               f'{timeout_s:.0f} s (markers under {work.root / "done"})')
        time.sleep(poll_s)
