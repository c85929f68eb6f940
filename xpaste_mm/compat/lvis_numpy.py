"""lvis-api 0.5.3 on numpy >= 1.24: its ``LVISEval`` calls the removed alias ``np.float``.

Instead of editing site-packages or re-adding the alias to numpy for everybody, the ``np`` name
inside ``lvis.eval`` is pointed at a thin proxy of numpy that also answers ``float``.
"""
from __future__ import annotations

import types

import numpy as np

# Aliases numpy removed in 1.24 that lvis-api still uses, with their documented replacements.
_REMOVED_ALIASES = {'float': float, 'int': int, 'bool': bool, 'object': object}


class _NumpyWithAliases(types.ModuleType):
    """Module proxy: numpy's attributes plus the removed builtin aliases."""

    def __getattr__(self, name: str):
        if name in _REMOVED_ALIASES:
            return _REMOVED_ALIASES[name]
        return getattr(np, name)


def patch_lvis_for_numpy2() -> bool:
    """Make ``lvis.eval`` work on numpy 2; returns True when a patch was applied."""
    try:
        import lvis.eval as lvis_eval
    except ImportError:
        return False
    if isinstance(lvis_eval.np, _NumpyWithAliases) or hasattr(np, 'float'):
        return False
    lvis_eval.np = _NumpyWithAliases('numpy')
    return True
