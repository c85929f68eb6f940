"""xpaste-mm: X-Paste (scalable copy-paste with CLIP and Stable Diffusion) for MMDetection 3.x.

Where MMDetection is installed, importing the package applies the compatibility fixes of
:mod:`xpaste_mm.compat` and registers every transform, model, metric and hook in MMDetection's
registries (configs use ``default_scope='mmdet'`` and ``custom_imports=dict(imports=['xpaste_mm'])``).
Without it only the framework-free parts work, e.g. the LVIS evaluator :mod:`xpaste_mm.evaluation`
(``xpaste-lvis-eval``).
"""
from importlib.util import find_spec

__version__ = '0.1.0'


def _mmdet_installed() -> bool:
    try:
        return find_spec('mmdet') is not None
    except (ImportError, ValueError):
        return False


if _mmdet_installed():
    from .compat import apply_all as _apply_compat_fixes

    _apply_compat_fixes()

    from . import datasets, engine, evaluation, models  # noqa: F401  (registration)
    from .evaluation import fast_lvis_metric  # noqa: F401  (registers FastLVISMetric)
