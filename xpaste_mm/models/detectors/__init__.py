"""Detectors."""
from .centernet2 import CenterNet2

__all__ = ['CenterNet2']
