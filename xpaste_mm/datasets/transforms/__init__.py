"""Data transforms registered in mmdet.registry.TRANSFORMS."""
