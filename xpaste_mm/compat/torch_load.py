"""Checkpoints under torch >= 2.6, whose ``torch.load`` defaults to ``weights_only=True``.

mmengine 0.10 stores its message hub in every checkpoint: ``HistoryBuffer`` objects holding numpy
arrays, plus the buffer's statistics methods pickled through ``getattr``. The safe unpickler refuses
both, so ``--resume`` fails. Rather than turning ``weights_only`` off (which would trust arbitrary
code in a file), exactly the needed numpy and mmengine types are allow-listed, and ``HistoryBuffer``
stops pickling its built-in statistics methods (``__setstate__`` re-registers them anyway).
"""
from __future__ import annotations

import numpy as np
import torch

_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def _numpy_types() -> list:
    core = getattr(np, '_core', None) or np.core  # numpy 2 renamed np.core to np._core
    dtype_classes = [cls for cls in vars(np.dtypes).values()
                     if isinstance(cls, type) and issubclass(cls, np.dtype)]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype,
            *dtype_classes]


def _history_buffer_state(self) -> dict:
    """Pickle state of a ``HistoryBuffer`` without the built-in statistics methods."""
    state = {k: v for k, v in self.__dict__.items() if k != 'statistics_methods'}
    custom = {k: v for k, v in self._statistics_methods.items() if k not in _DEFAULT_STATISTICS}
    if custom:  # user-registered methods still need pickling (and a trusted load)
        state['statistics_methods'] = custom
    return state


def allow_mmengine_checkpoint_types() -> bool:
    """Make mmengine checkpoints load with ``weights_only=True``; False on torch without the API."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_state
    add_safe_globals([HistoryBuffer, *_numpy_types()])
    return True
