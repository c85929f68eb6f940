"""CenterNet2-style detector components registered in mmdet.registry.MODELS."""
from . import dense_heads, detectors, losses, roi_heads  # noqa: F401  (registration)
