"""CenterNet2-style detector components registered in mmdet.registry.MODELS."""
