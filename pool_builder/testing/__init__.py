"""Test and demo fixtures of the pool builder: tiny random-weight models in local folders.

Not part of the library: tests, the demo and the benchmarks import them from here.
"""
from .tiny_models import (
    TinyModels,
    build_tiny_birefnet,
    build_tiny_clipseg,
    build_tiny_models,
    build_tiny_open_clip,
    build_tiny_stable_diffusion,
)

__all__ = ['TinyModels', 'build_tiny_birefnet', 'build_tiny_clipseg', 'build_tiny_models',
           'build_tiny_open_clip', 'build_tiny_stable_diffusion']
