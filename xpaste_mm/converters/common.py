"""Shared machinery of the checkpoint converters: loading, key checks, reporting, saving.

A conversion produces a :class:`ConversionReport`: every source key is either mapped (to a target key
with a checked shape) or dropped with a stated reason, and every key the target model needs must be
present. :func:`finalize` refuses to write anything when a needed weight is missing, a shape disagrees
or a source key is unexpected.
"""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

#: Target keys that may legitimately be absent from a converted checkpoint.
OPTIONAL_TARGET_SUFFIXES = ('num_batches_tracked',)


class ConversionError(ValueError):
    """The source checkpoint does not fit the target model (the message names the keys)."""


@dataclass
class ConversionReport:
    """What happened to every key of a conversion."""

    mapped: dict[str, str] = field(default_factory=dict)        # source key -> target key
    dropped: dict[str, str] = field(default_factory=dict)       # source key -> reason
    unexpected: list[str] = field(default_factory=list)         # source keys nobody claimed
    missing: list[str] = field(default_factory=list)            # target keys not produced
    shape_errors: list[str] = field(default_factory=list)       # 'key: source shape vs target shape'
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unexpected or self.missing or self.shape_errors)

    def summary(self, max_list: int = 20) -> str:
        lines = [f'mapped: {len(self.mapped)} keys', f'dropped on purpose: {len(self.dropped)} keys']
        reasons: dict[str, list[str]] = {}
        for key, reason in self.dropped.items():
            reasons.setdefault(reason, []).append(key)
        for reason, keys in reasons.items():
            lines.append(f'  - {len(keys)} x {reason} (e.g. {keys[0]})')
        for title, items in (('unexpected source keys', self.unexpected),
                             ('MISSING target keys', self.missing),
                             ('SHAPE mismatches', self.shape_errors)):
            if items:
                lines.append(f'{title}: {len(items)}')
                lines.extend(f'  - {item}' for item in items[:max_list])
                if len(items) > max_list:
                    lines.append(f'  ... and {len(items) - max_list} more')
        lines.extend(f'note: {n}' for n in self.notes)
        return '\n'.join(lines)


def load_source_checkpoint(path: str | os.PathLike, trust_pickle: bool = False) -> dict:
    """Read a ``.pth``/``.pt`` (torch, ``weights_only=True``) or detectron2 ``.pkl`` checkpoint.

    A ``.pkl`` file is a plain Python pickle, which can run arbitrary code when loaded: it is only
    read with ``trust_pickle=True``. numpy arrays are turned into tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    if path.suffix == '.pkl':
        if not trust_pickle:
            raise ConversionError(
                f'{path} is a Python pickle (detectron2 .pkl): loading it can execute code stored in '
                'the file. Pass --trust-pickle (trust_pickle=True) only for files from a source you trust.')
        with open(path, 'rb') as f:
            data = pickle.load(f, encoding='latin1')
    else:
        try:
            data = torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as exc:
            if not trust_pickle:
                raise ConversionError(
                    f'{path} holds Python objects beyond tensors, so torch refuses it with '
                    f'weights_only=True ({str(exc).splitlines()[0]}). Pass --trust-pickle only for files '
                    'from a source you trust.') from exc
            data = torch.load(path, map_location='cpu', weights_only=False)
    if not isinstance(data, Mapping):
        raise ConversionError(f'{path}: expected a dict of weights, got {type(data).__name__}')
    return dict(data)


def to_tensor_dict(weights: Mapping) -> OrderedDict:
    """Tensors (numpy arrays converted) of a flat weight mapping; other values are dropped."""
    out = OrderedDict()
    for key, value in weights.items():
        if isinstance(value, np.ndarray):
            out[key] = torch.from_numpy(np.ascontiguousarray(value))
        elif isinstance(value, torch.Tensor):
            out[key] = value
    return out


def strip_prefix(weights: Mapping, prefix: str = 'module.') -> tuple[OrderedDict, bool]:
    """Remove ``prefix`` from keys when every key carries it (DDP-wrapped saves)."""
    keys = list(weights)
    if keys and all(k.startswith(prefix) for k in keys):
        return OrderedDict((k[len(prefix):], v) for k, v in weights.items()), True
    return OrderedDict(weights), False


def check_against_target(converted: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                         report: ConversionReport,
                         optional_suffixes: tuple[str, ...] = OPTIONAL_TARGET_SUFFIXES) -> None:
    """Record missing target keys, keys the target lacks and shape mismatches in ``report``."""
    for key, tensor in converted.items():
        if key not in target:
            report.unexpected.append(f'{key} (produced by the mapping but absent from the model)')
        elif tuple(tensor.shape) != tuple(target[key].shape):
            report.shape_errors.append(
                f'{key}: checkpoint {tuple(tensor.shape)} vs model {tuple(target[key].shape)}')
    for key in target:
        if key not in converted and not key.endswith(optional_suffixes):
            report.missing.append(key)


def finalize(converted: Mapping[str, torch.Tensor], report: ConversionReport,
             out_file: str | os.PathLike | None, meta: dict) -> Path | None:
    """Write ``{'state_dict', 'meta'}`` to ``out_file`` if the report is clean, else raise."""
    if not report.ok:
        raise ConversionError('refusing to write a converted checkpoint:\n' + report.summary())
    if out_file is None:
        return None
    from ..utils.io import atomic_write
    out_file = Path(out_file)
    payload = dict(state_dict=OrderedDict((k, v.contiguous()) for k, v in converted.items()), meta=meta)
    return atomic_write(out_file, lambda tmp: torch.save(payload, tmp))
