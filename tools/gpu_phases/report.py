"""The result of a check run: one row per measured figure, one status per phase, the environment, printed
as one table and written as JSON."""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xpaste_mm.utils.io import atomic_write_json

#: Phase statuses: ``ok`` ran and passed its checks, ``refused`` a requirement is absent (see the
#: message for the fix), ``failed`` an error or a failed check, ``timeout`` killed at its time limit.
STATUSES = ('ok', 'refused', 'failed', 'timeout')


@dataclass
class Row:
    """One measured figure, e.g. ``Row('train_r50_amp', 'iterations/s', 2.91, 'it/s', 'NVIDIA H200')``."""

    phase: str
    figure: str
    value: float | int | str
    unit: str
    device: str
    note: str = ''


@dataclass
class PhaseStatus:
    """How a phase ended, its wall time and limit in seconds, and the reason when it did not pass."""

    phase: str
    status: str
    seconds: float
    limit_s: float
    message: str = ''


@dataclass
class Report:
    """Everything a run produced."""

    meta: dict
    rows: list[Row] = field(default_factory=list)
    phases: list[PhaseStatus] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(meta=self.meta, rows=[asdict(r) for r in self.rows],
                    phases=[asdict(p) for p in self.phases])

    def write_json(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_dict(), indent=1)

    def exit_code(self) -> int:
        """0: every phase passed; 1: a phase failed or timed out; 2: none failed, but one was refused."""
        statuses = {p.status for p in self.phases}
        if statuses & {'failed', 'timeout'}:
            return 1
        return 2 if 'refused' in statuses else 0


def format_value(value: float | int | str) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f'{value:.4g}' if abs(value) < 1e5 else f'{value:.0f}'


def format_table(report: Report) -> str:
    """The figures as one aligned text table, then each phase's status (with the reason and fix when
    it did not pass)."""
    header = ('phase', 'figure', 'value', 'unit', 'device', 'note')
    lines = [tuple(map(str, (r.phase, r.figure, format_value(r.value), r.unit, r.device, r.note)))
             for r in report.rows]
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(header)]

    def fmt(cells) -> str:
        padded = (c.rjust(w) if i == 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return '  '.join(padded).rstrip()

    out = [fmt(header), fmt('-' * w for w in widths), *(fmt(line) for line in lines), '']
    for p in report.phases:
        text = f'[{p.status:>7}] {p.phase} ({p.seconds:.1f} s of {p.limit_s:.0f} s)'
        out.append(text + (f': {p.message}' if p.message else ''))
    return '\n'.join(out)


def _version(distribution: str) -> str:
    """Installed version of a distribution, read from its metadata (nothing is imported)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return 'not installed'


def environment(device: str, smoke: bool, argv: list[str]) -> dict:
    """Date, host, device name and the versions that matter for the figures."""
    import torch

    meta = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                host=platform.node(), python=sys.version.split()[0], smoke=smoke, argv=argv,
                requested_device=device, torch=torch.__version__, torch_cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                cpu_count=os.cpu_count())
    for name, distribution in (('mmcv', 'mmcv'), ('mmengine', 'mmengine'), ('mmdet', 'mmdet'),
                               ('diffusers', 'diffusers'), ('transformers', 'transformers'),
                               ('open_clip', 'open_clip_torch')):
        meta[name] = _version(distribution)
    try:
        from mmcv.ops import get_compiling_cuda_version
        meta['mmcv_ops_cuda'] = get_compiling_cuda_version()
    except ImportError:
        meta['mmcv_ops_cuda'] = 'mmcv ops not importable'
    meta['device_name'] = device_name(device)
    if torch.device(device).type == 'cuda' and torch.cuda.is_available():
        index = torch.device(device).index or 0
        if index < torch.cuda.device_count():
            props = torch.cuda.get_device_properties(index)
            meta.update(capability=f'{props.major}.{props.minor}',
                        gpu_memory_gib=round(props.total_memory / 2**30, 1))
    return meta


def device_name(device: str) -> str:
    """``"NVIDIA H200 (cuda:0)"`` or ``"CPU (16 cores)"``; the device column of the table."""
    import torch

    dev = torch.device(device)
    if dev.type == 'cuda' and torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count():
        return f'{torch.cuda.get_device_name(dev.index or 0)} ({dev.type}:{dev.index or 0})'
    if dev.type == 'cpu':
        return f'CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)'
    return str(device)


def read_rows(path: str | os.PathLike) -> list[Row]:
    """Rows a phase process appended to a JSON-lines file (a killed phase keeps what it measured)."""
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text(encoding='utf-8').splitlines():
            if line.strip():
                rows.append(Row(**json.loads(line)))
    return rows
