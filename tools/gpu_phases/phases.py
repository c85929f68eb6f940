"""The phases, their default time limits and the ``--phases`` selection."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    """``target`` is ``module:function`` inside this package, imported when the phase runs.
    ``limit_s``: default hard time limit in seconds (``smoke_limit_s`` in ``--smoke`` mode);
    ``cuda_only``: selected by default only when the device is CUDA (asked for explicitly on another
    device, the phase refuses with the reason)."""

    name: str
    target: str
    limit_s: float
    smoke_limit_s: float
    summary: str
    cuda_only: bool = False

    def function(self) -> Callable:
        module, name = self.target.split(':')
        return getattr(importlib.import_module(f'{__package__}.{module}'), name)


PHASES = (
    Phase('mmcv_ops', 'ops:mmcv_ops', 120, 60, 'mmcv nms / RoIAlign on the device equal to the CPU results'),
    Phase('train_r50_fp32', 'training:train_r50_fp32', 420, 120, 'R50 X-Paste config at 640, fp32'),
    Phase('train_r50_amp', 'training:train_r50_amp', 420, 120, 'R50 X-Paste config at 640, AMP',
          cuda_only=True),
    Phase('train_swinl_fp32', 'training:train_swinl_fp32', 420, 120, 'Swin-L X-Paste config at 896, fp32'),
    Phase('train_swinl_amp', 'training:train_swinl_amp', 420, 120, 'Swin-L X-Paste config at 896, AMP',
          cuda_only=True),
    Phase('dataloader', 'training:dataloader', 300, 120, 'X-Paste train pipeline images/s per worker count'),
    Phase('generate', 'pool:generate', 420, 120, 'SD-1.5-shaped generation, recipe scheduler and steps'),
    Phase('segment', 'pool:segment', 300, 120, 'CLIPSeg- and BiRefNet-shaped segmentation'),
    Phase('score', 'pool:score', 240, 120, 'open_clip ViT-L/14 scoring'),
    Phase('inference', 'training:inference', 300, 120, 'R50 inference with post-processing'),
)
BY_NAME = {p.name: p for p in PHASES}
GROUPS = {
    'all': [p.name for p in PHASES],
    'train': [p.name for p in PHASES if p.name.startswith('train_')],
    'amp': [p.name for p in PHASES if p.name.endswith('_amp')],
    'pool': ['generate', 'segment', 'score'],
}


def select_phases(names: Sequence[str] | None, device: str) -> list[Phase]:
    """Phases named (or in named groups), in the fixed order; by default every phase that applies to
    the device type (the AMP phases need CUDA)."""
    import torch

    if not names:
        cuda = torch.device(device).type == 'cuda'
        return [p for p in PHASES if cuda or not p.cuda_only]
    wanted: set[str] = set()
    for name in names:
        if name in GROUPS:
            wanted.update(GROUPS[name])
        elif name in BY_NAME:
            wanted.add(name)
        else:
            raise ValueError(f'unknown phase {name!r}; phases: {", ".join(BY_NAME)}; groups: '
                             f'{", ".join(GROUPS)}')
    return [p for p in PHASES if p.name in wanted]


def parse_limits(items: Sequence[str] | None) -> tuple[float | None, dict[str, float]]:
    """``["300"]`` -> every phase 300 s; ``["generate=600", "train=200"]`` -> per phase or group."""
    default, per_phase = None, {}
    for item in items or ():
        name, sep, value = item.rpartition('=')
        try:
            seconds = float(value)
        except ValueError as exc:
            raise ValueError(f'--time-limit {item!r}: expected SECONDS or PHASE=SECONDS') from exc
        if seconds <= 0:
            raise ValueError(f'--time-limit {item!r}: the limit must be positive')
        if not sep:
            default = seconds
        elif name in GROUPS or name in BY_NAME:
            per_phase.update({n: seconds for n in GROUPS.get(name, [name])})
        else:
            raise ValueError(f'--time-limit {item!r}: unknown phase {name!r}')
    return default, per_phase
