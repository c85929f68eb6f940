"""Append-only JSONL record files that survive being killed at any instant.

A batch of records is appended with one ``write`` call followed by ``fsync``, after the files the
records describe were written atomically. A process killed mid-append can at worst leave a last
line without its newline: readers ignore such a torn tail and the next append cuts it off. Each
record file has a single writer: work is sharded by category, and the lock of each (stage, shard)
(``locking.py``) keeps a second process off the same shard.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import PoolBuilderError


class RecordFileError(PoolBuilderError, ValueError):
    """A record file has a malformed line that is not a torn last line."""


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All complete records of ``path`` (``[]`` when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    complete, _, _torn_tail = data.rpartition(b'\n')
    records = []
    for line_no, line in enumerate(complete.split(b'\n') if complete else (), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordFileError(f'{path}:{line_no}: malformed record ({exc}); delete the line or '
                                  'the file to redo that work') from exc
        if not isinstance(record, dict):
            raise RecordFileError(f'{path}:{line_no}: a record must be a JSON object')
        records.append(record)
    return records


def append_jsonl(path: str | os.PathLike, records: Iterable[Mapping]) -> None:
    """Append ``records`` durably (one write + fsync); a torn last line left by a killed writer is
    removed first."""
    payload = ''.join(json.dumps(dict(r), ensure_ascii=False) + '\n' for r in records).encode('utf-8')
    if not payload:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'ab+') as f:
        _drop_torn_tail(f)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def _drop_torn_tail(f) -> None:
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b'\n':
        return
    # Find the last newline and truncate after it (the tail is a partial record).
    block = 4096
    pos = size
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        chunk = f.read(pos - start)
        cut = chunk.rfind(b'\n')
        if cut >= 0:
            f.truncate(start + cut + 1)
            return
        pos = start
    f.truncate(0)


def latest_by_key(records: Iterable[Mapping], key: str = 'key') -> dict[str, dict]:
    """``{record[key]: record}``, later records replacing earlier ones."""
    return {r[key]: dict(r) for r in records if key in r}
