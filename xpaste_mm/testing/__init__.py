"""Test and benchmark fixtures (like ``mmdet.testing``): synthetic pools, images and metadata files.

Nothing in the library imports this package. The user-facing synthetic LVIS dataset generator is
:func:`xpaste_mm.datasets.make_synthetic_lvis` (also ``tools/dataset_converters/make_synthetic_lvis.py``);
the fixtures here build on its drawing style. LVIS-scale evaluation data (ground truth and detections)
is in :mod:`xpaste_mm.testing.lvis_eval_data`. mmdet and torch are imported only by the functions
that return their types (:func:`paste_destination`, :func:`random_detection_batch`).
"""
from .category_files import write_synthetic_image_counts, write_synthetic_size_prior
from .images import paste_destination, photo_with_object_mask, render_object_images
from .model_inputs import random_detection_batch
from .pools import make_paths_only_index, make_synthetic_pool, random_rgba_shape

__all__ = [
    'make_paths_only_index', 'make_synthetic_pool', 'paste_destination', 'photo_with_object_mask',
    'random_detection_batch', 'random_rgba_shape', 'render_object_images', 'write_synthetic_image_counts',
    'write_synthetic_size_prior',
]
