"""Verify the installed stack and say exactly what is wrong (used by ``tools/install.sh``).

    python tools/check_install.py --mmcv-only [--mmcv-version 2.1.0] [--need-cuda-ops]
    python tools/check_install.py                 # the whole stack: mmcv ops, mmdet, xpaste_mm

Exit status: 0 when everything works; 3 when mmcv itself is missing, the wrong version or its compiled
extension does not load (the caller may (re)install it); 1 for any other failure. Every failure prints
the last lines of the underlying traceback and a diagnosis that follows from the exception itself:
a missing Python package is named with the ``pip install`` that fixes it, and only an import error
that says so (undefined symbol, ABI/version mismatch, missing ``mmcv._ext``) is blamed on a stale or
wrongly built mmcv wheel.

Standard library only at import time, so it runs on any interpreter.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

EXIT_OK, EXIT_FAILED, EXIT_MMCV_BROKEN = 0, 1, 3
# Import names whose pip distribution has another name.
PIP_NAMES = {'cv2': 'opencv-python-headless', 'yaml': 'pyyaml', 'PIL': 'pillow', 'mmcv': 'mmcv==2.1.0',
             'pycocotools': 'pycocotools', 'open_clip': 'open_clip_torch', 'sklearn': 'scikit-learn'}
STALE_WHEEL_PATTERNS = ('undefined symbol', 'abi', 'version mismatch', 'was compiled against',
                        'incompatible', 'mmcv._ext', 'wrong elf class', 'cannot open shared object')


def diagnose(exc: BaseException, wheel_dir: str | None = None) -> str:
    """A one-paragraph explanation of ``exc`` with the fix, true to what the exception says."""
    text = f'{type(exc).__name__}: {exc}'
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split('.')[0] != 'mmcv':
        top = exc.name.split('.')[0]
        pip_name = PIP_NAMES.get(top, top.replace('_', '-'))
        return (f"the Python package '{top}' is missing from {sys.executable}; this is not a broken mmcv "
                f"build and needs no rebuild. Fix: {sys.executable} -m pip install {pip_name} "
                f"(or rerun tools/install.sh, which installs it)")
    lowered = text.lower()
    if isinstance(exc, ImportError) and any(p in lowered for p in STALE_WHEEL_PATTERNS):
        where = f'delete {wheel_dir} and ' if wheel_dir else ''
        return ('mmcv\'s compiled extension does not match this torch/Python (the import error above says '
                f'so): the installed or cached wheel was built against another build. Fix: {where}rerun '
                'tools/install.sh to rebuild it against the installed torch')
    if isinstance(exc, ModuleNotFoundError):
        return 'mmcv is not installed in this interpreter. Fix: rerun tools/install.sh'
    return ('an unexpected error (see the traceback above); no rebuild is implied. Please report it with '
            'the output of `python -m pip list`')


def _tail(exc: BaseException, lines: int = 8) -> str:
    formatted = ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    return '\n'.join('    ' + line for line in formatted[-lines:])


class MmcvNeedsReinstall(RuntimeError):
    """mmcv is the wrong version, or a CPU-only build on a host that wants CUDA ops: reinstalling fixes it."""


def check_mmcv(version: str, need_cuda_ops: bool) -> None:
    """mmcv of ``version`` whose compiled ops load and compute (and CUDA ops when wanted)."""
    import mmcv
    if mmcv.__version__ != version:
        raise MmcvNeedsReinstall(f'mmcv {mmcv.__version__} is installed, {version} is required')
    import torch
    from mmcv.ops import RoIAlign, get_compiling_cuda_version, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    if keep.tolist() != [0, 2]:
        raise RuntimeError(f'mmcv.ops.nms kept {keep.tolist()}, expected [0, 2]')
    feats = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8)
    roi_align = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    out = roi_align(feats, torch.tensor([[0., 0., 0., 4., 4.]]))
    if tuple(out.shape) != (1, 1, 2, 2):
        raise RuntimeError(f'mmcv.ops.RoIAlign returned shape {tuple(out.shape)}, expected (1, 1, 2, 2)')
    if need_cuda_ops and get_compiling_cuda_version() == 'not available':
        raise MmcvNeedsReinstall('mmcv was built without CUDA ops on a machine with a GPU and nvcc')


def check_stack() -> str:
    """mmengine, mmdet and this project import and register; returns a version line."""
    import mmdet
    import mmengine
    import torch
    from mmdet.registry import MODELS

    import xpaste_mm  # noqa: F401  (registers the plugin)
    if MODELS.get('CenterNet2') is None:
        raise RuntimeError("import xpaste_mm did not register 'CenterNet2' in mmdet's MODELS registry")
    import mmcv
    return (f'torch {torch.__version__}, mmcv {mmcv.__version__} (ops), mmengine {mmengine.__version__}, '
            f'mmdet {mmdet.__version__}, cuda available: {torch.cuda.is_available()}')


def run_check(name: str, check: Callable[[], object], wheel_dir: str | None) -> tuple[bool, object]:
    try:
        return True, check()
    except Exception as exc:  # noqa: BLE001  (every failure is reported, with its cause)
        print(f'[check] {name} FAILED:\n{_tail(exc)}', file=sys.stderr)
        print(f'[check] diagnosis: {diagnose(exc, wheel_dir)}', file=sys.stderr)
        return False, exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--mmcv-only', action='store_true', help='check mmcv and its compiled ops only')
    parser.add_argument('--mmcv-version', default='2.1.0')
    parser.add_argument('--need-cuda-ops', action='store_true')
    parser.add_argument('--wheel-dir', help='the mmcv wheel cache folder, named in a stale-wheel diagnosis')
    args = parser.parse_args(argv)
    ok, error = run_check('mmcv', lambda: check_mmcv(args.mmcv_version, args.need_cuda_ops), args.wheel_dir)
    if not ok:
        mmcv_itself = (isinstance(error, ImportError) and not (
            isinstance(error, ModuleNotFoundError) and error.name and not error.name.startswith('mmcv')))
        reinstall = isinstance(error, MmcvNeedsReinstall)
        return EXIT_MMCV_BROKEN if (mmcv_itself or reinstall) else EXIT_FAILED
    if args.mmcv_only:
        return EXIT_OK
    ok, result = run_check('stack', check_stack, args.wheel_dir)
    if not ok:
        return EXIT_FAILED
    print(f'[check] OK: {result}')
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
