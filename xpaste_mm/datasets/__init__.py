"""Datasets, the instance pool and data transforms.

The category-file readers (``load_class_names``, ``load_image_counts``, ``load_size_prior``) are
defined in :mod:`xpaste_mm.categories` and re-exported here for convenience.
"""
from ..categories import load_class_names, load_image_counts, load_size_prior
from . import transforms  # noqa: F401  (registers transforms)
from .category_stats import compute_category_stats, save_category_stats
from .instance_pool import InstancePool
from .pool_index import INDEX_FILENAME, SOURCES, PoolFormatError, PoolIndex
from .synthetic_lvis import SyntheticLVIS, category_names, make_synthetic_lvis

__all__ = [
    'INDEX_FILENAME', 'InstancePool', 'SOURCES', 'PoolFormatError', 'PoolIndex', 'SyntheticLVIS',
    'category_names', 'compute_category_stats', 'load_class_names', 'load_image_counts', 'load_size_prior',
    'make_synthetic_lvis', 'save_category_stats',
]
