"""Torch helpers shared by the model stages and the segmenters (imports torch when called)."""
from __future__ import annotations

from .errors import ConfigError


def torch_dtype(dtype: str, device: str):
    """``"auto"`` -> float16 on CUDA, float32 elsewhere; else the named torch dtype."""
    import torch

    if dtype == 'auto':
        return torch.float16 if str(device).startswith('cuda') else torch.float32
    names = {'fp16': 'float16', 'fp32': 'float32', 'bf16': 'bfloat16'}
    value = getattr(torch, names.get(dtype, dtype), None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(f'unknown dtype {dtype!r} (use auto, fp16, fp32 or bf16)')
    return value
