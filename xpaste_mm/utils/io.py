"""Atomic file writes: a reader (or a resumed job) never sees a half-written file.

A write goes to a temporary sibling ``.<stem>.<random>.tmp<suffix>`` that is renamed onto the
destination. It is created like ``open(path, 'w')`` would create the file (mode 0666 minus the
process umask), so files shared between users get the usual group/world permissions. A process
killed mid-write leaves its temporary file behind: :func:`remove_temp_files` deletes those on the
next run of the job that owns the folder.
"""
from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMP_MARKER = '.tmp'


def _create_temp_file(path: Path) -> Path:
    """Create an empty, uniquely named temporary sibling of ``path`` (mode 0666 & ~umask)."""
    while True:
        tmp = path.parent / f'.{path.stem}.{secrets.token_hex(4)}{TEMP_MARKER}{path.suffix}'
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path`` atomically.

    The temporary file lives in the destination folder (same filesystem) and keeps the
    destination's suffix, so writers that pick a format by extension (cv2, PIL, numpy) work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp_file(path)
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    def write(tmp: str) -> None:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """Serialise ``obj`` as JSON (UTF-8, non-ASCII kept) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent))


def remove_temp_files(folder: str | os.PathLike, target: str | None = None) -> int:
    """Delete the temporary files that interrupted atomic writes left in ``folder``; returns the count.

    With ``target`` (a file name in ``folder``) only that destination's temporary files go, which is
    safe in folders other writers share; without it every ``.<name>.tmp<suffix>`` file goes, so only
    call it on folders that no other process writes at the same time.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    if target is None:
        entries = (p for p in folder.iterdir() if p.name.startswith('.') and TEMP_MARKER in p.name)
    else:
        name = Path(target)
        entries = folder.glob(f'.{glob.escape(name.stem)}.*{TEMP_MARKER}{glob.escape(name.suffix)}')
    removed = 0
    for entry in entries:
        if entry.is_file():
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def build_folder_atomically(target: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """``target`` as filled by ``fill(staging)`` in a temporary sibling folder renamed into place, so
    an interrupted build never leaves a half-written folder; an existing ``target`` is reused as is
    (also when another process finished it first)."""
    target = Path(target)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{target.name}.', dir=target.parent))
    try:
        fill(staging)
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():  # not a lost race with another builder
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
