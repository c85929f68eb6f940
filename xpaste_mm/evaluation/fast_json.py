"""Fast JSON loading for big annotation / result files: orjson when installed, cyclic GC paused.

Parsing allocates millions of containers without reference cycles; the cyclic collector's repeated
scans of them cost ~40% of the time, and reference counting frees them anyway.
"""
from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager

try:  # optional (the 'eval' extra): about 1.8x faster than json on result files
    import orjson
except ImportError:
    orjson = None


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def loads(data: bytes):
    """Parse JSON; orjson first, Python's json for what orjson refuses (NaN, Infinity) or without it.

    Raises ``json.JSONDecodeError`` for invalid JSON.
    """
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
