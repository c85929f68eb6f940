"""What a phase needs, checked before it runs: each check raises :class:`PhaseRefused` with the reason
and the exact fix, so a GPU host that lacks something says what to do instead of failing deep inside
a model."""
from __future__ import annotations

import importlib

INSTALL = 'bash tools/install.sh'


class PhaseRefused(RuntimeError):
    """A requirement of the phase is absent; the message says what and how to fix it."""


def require_device(device: str) -> None:
    """``device`` exists and torch can run kernels on it (GPU architecture supported by torch)."""
    import torch

    kind = torch.device(device).type
    if kind == 'cpu':
        return
    if kind != 'cuda':
        raise PhaseRefused(f'device {device!r} is not supported by this check; use cpu, cuda or cuda:N')
    if not torch.cuda.is_available():
        build = f'CUDA {torch.version.cuda} build' if torch.version.cuda else 'CPU-only build'
        fix = ('run on a GPU host (check `nvidia-smi` and CUDA_VISIBLE_DEVICES)' if torch.version.cuda else
               'install a CUDA build of torch (pip install torch --index-url '
               'https://download.pytorch.org/whl/cu128), then ' + INSTALL)
        raise PhaseRefused(f'--device {device}: torch {torch.__version__} ({build}) sees no CUDA GPU. '
                           f'Fix: {fix}')
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        raise PhaseRefused(f'--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible. '
                           'Fix: pick cuda:0..cuda:N-1 or widen CUDA_VISIBLE_DEVICES')
    major, minor = torch.cuda.get_device_capability(index)
    arch_list = torch.cuda.get_arch_list()
    sm, ptx = f'sm_{major}{minor}', [a for a in arch_list if a.startswith('compute_')]
    ptx_ok = any(int(a.split('_')[1]) <= major * 10 + minor for a in ptx)
    if arch_list and sm not in arch_list and not ptx_ok:
        raise PhaseRefused(
            f'{torch.cuda.get_device_name(index)} is {sm}, but torch {torch.__version__} was built for '
            f'{" ".join(arch_list)}. Fix: install a torch build that supports {sm} (a newer CUDA wheel), '
            f'then {INSTALL}')


def require_amp(device: str) -> None:
    """Mixed precision as configured (mmengine ``AmpOptimWrapper``) runs on CUDA only."""
    import torch

    if torch.device(device).type != 'cuda':
        raise PhaseRefused(f'AMP training needs a CUDA device (mmengine AmpOptimWrapper is CUDA-only); got '
                           f'--device {device}. Fix: --device cuda, or select the *_fp32 phases')


def require_mmcv_ops(device: str) -> None:
    """mmcv's compiled ops load, and on CUDA they were compiled with CUDA for this GPU's architecture
    (a tiny ``RoIAlign`` on the device must run)."""
    import torch

    try:
        from mmcv.ops import get_compiling_cuda_version
    except ImportError as exc:
        raise PhaseRefused(f'mmcv with compiled ops does not import ({exc}). Fix: {INSTALL} '
                           '(python tools/check_install.py explains the cause)') from exc
    if torch.device(device).type != 'cuda':
        return
    compiled = get_compiling_cuda_version()
    if compiled == 'not available':
        raise PhaseRefused(
            'mmcv was built without CUDA ops (it was built where no GPU or nvcc was visible). Fix on this '
            f'GPU host, with nvcc of CUDA {torch.version.cuda or "<torch.version.cuda>"} on PATH: '
            f'pip uninstall -y mmcv && {INSTALL}')
    if torch.version.cuda and compiled.split('.')[0] != torch.version.cuda.split('.')[0]:
        raise PhaseRefused(
            f'mmcv\'s CUDA ops were compiled with CUDA {compiled}, torch uses CUDA {torch.version.cuda}. '
            f'Fix: put nvcc {torch.version.cuda} on PATH, delete the cached wheel '
            f'(~/.cache/xpaste-mm/wheels/), pip uninstall -y mmcv && {INSTALL}')
    try:
        _probe_roi_align(device)
    except RuntimeError as exc:
        text = str(exc)
        if 'no kernel image' in text or 'invalid device function' in text:
            major, minor = torch.cuda.get_device_capability(torch.device(device))
            raise PhaseRefused(
                f'mmcv\'s CUDA ops were not compiled for this GPU (sm_{major}{minor}): {text.strip()[:200]}. '
                'Fix: delete the cached wheel (~/.cache/xpaste-mm/wheels/), pip uninstall -y mmcv && '
                f'TORCH_CUDA_ARCH_LIST="{major}.{minor}" {INSTALL}') from exc
        if 'not compiled with gpu support' in text.lower():
            raise PhaseRefused(f'mmcv has no CUDA implementation of RoIAlign ({text.strip()[:200]}). Fix on '
                               f'this GPU host with nvcc: pip uninstall -y mmcv && {INSTALL}') from exc
        raise


def _probe_roi_align(device: str) -> None:
    """A 2x2 RoIAlign on the device: raises when mmcv has no kernel for this GPU."""
    import torch
    from mmcv.ops import RoIAlign

    feats = torch.ones(1, 1, 4, 4, device=device)
    rois = torch.tensor([[0., 0., 0., 3., 3.]], device=device)
    RoIAlign((2, 2), 1.0, 0, aligned=True)(feats, rois)
    torch.cuda.synchronize(torch.device(device))


def require_modules(*names: str) -> None:
    """Optional packages (the pool-building extras) are importable."""
    pip_names = {'open_clip': 'open_clip_torch'}
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise PhaseRefused(f'{name} does not import ({exc}). Fix: {INSTALL} (or pip install '
                               f'{pip_names.get(name, name)})') from exc
