"""Data transforms registered in mmdet.registry.TRANSFORMS."""
from .blending import BLEND_MODES, blend_instance
from .cached_copy_paste import CachedCopyPaste
from .formatting import PackXPasteInputs
from .instance_layers import InstanceLayers
from .xpaste_copy_paste import PreparedInstance, XPasteCopyPaste

__all__ = ['BLEND_MODES', 'CachedCopyPaste', 'InstanceLayers', 'PackXPasteInputs', 'PreparedInstance',
           'XPasteCopyPaste', 'blend_instance']
