"""Shared machinery of the checkpoint converters: loading, key checks, reporting, saving.

A conversion produces a :class:`ConversionReport`: every source key is either mapped (to a target key
with a checked shape) or dropped with a stated reason, and every key the target model needs must be
present. :func:`finalize` refuses to write anything when a needed weight is missing, a shape disagrees
or a source key is unexpected.
"""
from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

#: Target keys that may legitimately be absent from a converted checkpoint.
OPTIONAL_TARGET_SUFFIXES = ('num_batches_tracked',)
#: First bytes of a zip archive (``torch.save``'s format) and the PROTO opcode of pickle protocol >= 2.
ZIP_MAGIC = b'PK\x03\x04'
PICKLE_PROTO = 0x80
#: How torch's UnpicklingError starts when ``weights_only=True`` refuses a type.
WEIGHTS_ONLY_REFUSAL = 'Weights only load failed'
#: Exit codes of the converter scripts.
EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


class ConversionError(ValueError):
    """The source checkpoint does not fit the target model (the message names the keys)."""


class InputError(ConversionError):
    """A source checkpoint or target config cannot be read at all (missing, not a checkpoint,
    unpicklable, untrusted pickle, a config that does not build): exit code 2 in the scripts."""


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


def check_source_file(path: str | os.PathLike, trust_pickle: bool = False) -> str:
    """Check that ``path`` is a checkpoint we may read, without loading it; returns its format.

    ``'zip'``: what ``torch.save`` writes; ``'pickle'``: a Python pickle (detectron2 ``.pkl``, or
    torch's legacy format). Raises :class:`InputError` for a missing or empty file, a file that is
    neither (a random binary, an HTML error page, a truncated download), and a ``.pkl`` file without
    ``trust_pickle`` (unpickling can execute code stored in the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f'checkpoint {path} does not exist (check the path; relative paths are resolved '
                         f'against the current directory {Path.cwd()})')
    with open(path, 'rb') as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        kind = 'zip'
    elif len(head) >= 2 and head[0] == PICKLE_PROTO and 2 <= head[1] <= 5:
        kind = 'pickle'
    else:
        what = 'is empty' if not head else f'starts with bytes {head!r}'
        raise InputError(f'{path} is not a checkpoint: it {what}, while a checkpoint is either a PyTorch '
                         'file (a zip archive, as torch.save writes) or a Python pickle (detectron2 .pkl). '
                         'Check that the download completed and that the path names the weights file.')
    if path.suffix == '.pkl' and not trust_pickle:
        raise InputError(
            f'{path} is a Python pickle (detectron2 .pkl): loading it can execute code stored in the file. '
            'Pass --trust-pickle (trust_pickle=True) only for files from a source you trust.')
    return kind


def load_source_checkpoint(path: str | os.PathLike, trust_pickle: bool = False) -> dict:
    """Read a ``.pth``/``.pt`` (torch, ``weights_only=True``) or detectron2 ``.pkl`` checkpoint.

    The file is checked first (:func:`check_source_file`). A ``.pkl`` file is a plain Python pickle,
    which can run arbitrary code when loaded: it is only read with ``trust_pickle=True``; a torch file
    holding Python objects beyond tensors needs it too. numpy arrays are turned into tensors. Every
    failure to read is an :class:`InputError` naming the file and the cause.
    """
    path = Path(path)
    check_source_file(path, trust_pickle)
    if path.suffix == '.pkl':
        data = _unpickle(path, lambda: _load_pickle(path))
    else:
        try:
            data = torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as exc:
            refused = WEIGHTS_ONLY_REFUSAL in str(exc)
            if not (refused and trust_pickle):
                raise InputError(_torch_load_message(path, exc, refused)) from exc
            data = _unpickle(path, lambda: torch.load(path, map_location='cpu', weights_only=False))
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise InputError(f'{path}: not a readable PyTorch checkpoint, the file is truncated or corrupt '
                             f'({type(exc).__name__}: {_first_line(exc)}). Download it again.') from exc
    if not isinstance(data, Mapping):
        raise InputError(f'{path}: expected a dict of weights, got {type(data).__name__}')
    return dict(data)


def _load_pickle(path: Path):
    with open(path, 'rb') as f:
        return pickle.load(f, encoding='latin1')


def _unpickle(path: Path, load):
    """Run a full (trusted) unpickling; any failure becomes an :class:`InputError` naming the file."""
    try:
        return load()
    except Exception as exc:  # unpickling untrusted bytes can raise nearly anything
        raise InputError(f'{path}: cannot be unpickled ({type(exc).__name__}: {_first_line(exc)}). The file '
                         'is truncated or corrupt, or it refers to Python classes that are not installed '
                         '(a checkpoint needs only tensors, numpy arrays and plain containers).') from exc


def _torch_load_message(path: Path, exc: Exception, refused: bool) -> str:
    if refused:
        detail = re.search(r'Unsupported global: GLOBAL (\S+)', str(exc))
        found = f' (e.g. {detail.group(1)})' if detail else ''
        return (f'{path} holds Python objects beyond tensors{found}, so torch refuses it '
                'with weights_only=True. Pass --trust-pickle only for files from a source you '
                'trust.')
    return (f'{path}: not a readable PyTorch checkpoint, its pickled data is corrupt ({_first_line(exc)}). '
            'Download it again.')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


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
