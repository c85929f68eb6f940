"""Segmenter registry: ``grabcut``, ``border_color`` and ``full`` (weight-free, OpenCV),
``clipseg`` (text-prompted, transformers) and ``birefnet`` (salient objects, transformers)."""
from . import clipseg, opencv, salient  # noqa: F401  (registration)
from .base import SEGMENTERS, Segmenter, build_segmenter, parse_segmenter_spec, probabilities_to_uint8

__all__ = ['SEGMENTERS', 'Segmenter', 'build_segmenter', 'parse_segmenter_spec', 'probabilities_to_uint8']
