"""xpaste-mm: X-Paste (scalable copy-paste with CLIP and Stable Diffusion) for MMDetection 3.x.

Importing the package applies the compatibility fixes of :mod:`xpaste_mm.compat` and registers every
transform, model, metric and hook in MMDetection's registries (configs use ``default_scope='mmdet'``
and ``custom_imports=dict(imports=['xpaste_mm'])``).
"""
from .compat import apply_all as _apply_compat_fixes

_apply_compat_fixes()

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registration)

__version__ = '0.1.0'
