"""Synthetic inputs of the checks, generated on the fly and reused from the work dir on later runs:
LVIS v1-format data, a pool of RGBA crops with its index and the category statistics."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from xpaste_mm.utils.io import build_folder_atomically

NUM_LVIS_CATEGORIES = 1203


@dataclass(frozen=True)
class DataSpec:
    """Sizes of the synthetic data. ``image_size`` is the largest (height, width) in pixels."""

    num_categories: int
    num_train: int
    num_val: int
    image_size: tuple[int, int]
    max_objects: int
    crops_per_category: int
    crop_size: tuple[int, int]


#: LVIS-like: 1,203 categories, COCO-sized (480 x 640) images, two crops of 48-256 px per category.
FULL_DATA = DataSpec(NUM_LVIS_CATEGORIES, 64, 16, (480, 640), 8, 2, (48, 256))
#: The tiny CPU configs' 8 categories, small images.
SMOKE_DATA = DataSpec(8, 8, 4, (120, 160), 4, 3, (16, 48))


@dataclass(frozen=True)
class CheckData:
    """Paths of the generated data (absolute)."""

    root: Path
    train_ann: Path
    val_ann: Path
    class_names: tuple[str, ...]
    pool_file: Path
    stats_file: Path


def prepare_data(folder: str | os.PathLike, spec: DataSpec, seed: int = 0) -> CheckData:
    """Generate (or reuse, when ``folder/spec.json`` matches) the data under ``folder``.

    The category statistics are those of the synthetic training annotations, except that a category
    without annotations gets image count 1 and the average size prior, as every LVIS category has
    training images: the federated loss then samples its 50 classes as on LVIS.
    """
    folder = Path(folder).resolve()
    wanted = dict(asdict(spec), seed=seed)
    marker = folder / 'spec.json'
    if folder.exists() and not (marker.is_file() and json.loads(marker.read_text()) == wanted):
        shutil.rmtree(folder)  # generated for other sizes

    def fill(staging: Path) -> None:
        _generate(staging, spec, seed)
        (staging / 'spec.json').write_text(json.dumps(wanted))

    build_folder_atomically(folder, fill)
    from xpaste_mm.datasets import load_class_names
    lvis = folder / 'lvis'
    return CheckData(root=lvis, train_ann=lvis / 'annotations/lvis_v1_train.json',
                     val_ann=lvis / 'annotations/lvis_v1_val.json',
                     class_names=load_class_names(lvis / 'annotations/lvis_v1_train.json'),
                     pool_file=folder / 'pool/pool_index.npz', stats_file=folder / 'category_stats.json')


def _generate(folder: Path, spec: DataSpec, seed: int) -> None:
    from xpaste_mm.datasets import compute_category_stats, make_synthetic_lvis, save_category_stats
    from xpaste_mm.testing import make_synthetic_pool

    data = make_synthetic_lvis(folder / 'lvis', num_train=spec.num_train, num_val=spec.num_val,
                               num_categories=spec.num_categories, image_size=spec.image_size,
                               max_objects=spec.max_objects, seed=seed)
    ids = list(range(1, spec.num_categories + 1))
    make_synthetic_pool(folder / 'pool', ids, spec.crops_per_category, size_range=spec.crop_size, seed=seed)
    stats = compute_category_stats(data.train_ann)
    known = [c for c in stats['categories'] if c['size_mean'] > 0]
    mean = float(np.mean([c['size_mean'] for c in known]))
    std = float(np.mean([c['size_std'] for c in known]))
    for category in stats['categories']:
        if category['image_count'] == 0:
            category.update(image_count=1, size_mean=mean, size_std=std)
    save_category_stats(stats, folder / 'category_stats.json')
