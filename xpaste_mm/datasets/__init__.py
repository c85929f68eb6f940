"""Datasets, the instance pool and data transforms."""
from . import transforms  # noqa: F401  (registers transforms)
from .category_stats import compute_category_stats, load_image_counts, load_size_prior, save_category_stats
from .instance_pool import InstancePool
from .pool_index import INDEX_FILENAME, SOURCES, PoolFormatError, PoolIndex
from .synthetic_lvis import SyntheticLVIS, category_names, load_class_names, make_synthetic_lvis

__all__ = [
    'INDEX_FILENAME', 'InstancePool', 'SOURCES', 'PoolFormatError', 'PoolIndex', 'SyntheticLVIS',
    'category_names', 'compute_category_stats', 'load_class_names', 'load_image_counts', 'load_size_prior',
    'make_synthetic_lvis', 'save_category_stats',
]
