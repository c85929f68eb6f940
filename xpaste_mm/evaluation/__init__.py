"""Evaluation metrics registered in mmdet.registry.METRICS."""
