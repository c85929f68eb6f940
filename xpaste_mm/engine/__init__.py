"""Runner extensions, where MMDetection keeps them (``mmdet/engine/hooks``): registered hooks."""
from . import hooks  # noqa: F401  (registration)
