"""Compatibility fixes for the pinned stack (lvis-api on numpy 2, checkpoints on torch >= 2.6)."""
from .lvis_numpy import patch_lvis_for_numpy2
from .torch_load import allow_mmengine_checkpoint_types


def apply_all() -> None:
    """Apply every compatibility fix (idempotent); called on ``import xpaste_mm``."""
    patch_lvis_for_numpy2()
    allow_mmengine_checkpoint_types()


__all__ = ['apply_all', 'allow_mmengine_checkpoint_types', 'patch_lvis_for_numpy2']
