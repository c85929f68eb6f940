"""Synthetic per-category metadata files shaped like LVIS's (size prior, image counts)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def write_synthetic_size_prior(path: str | os.PathLike, num_categories: int = 1203, seed: int = 0) -> Path:
    """An X-Paste ``area_mean_std2.json`` (``{"<id>": [mean, std]}``, ids 1..N) shaped like LVIS's:
    relative-size means log-normal around 0.13 (clipped to 0.01..0.7), std 0.6 x mean."""
    rng = np.random.default_rng(seed)
    means = np.clip(rng.lognormal(np.log(0.13), 0.6, num_categories), 0.01, 0.7)
    path = Path(path)
    path.write_text(json.dumps({str(i + 1): [float(m), float(0.6 * m)] for i, m in enumerate(means)}))
    return path


def write_synthetic_image_counts(path: str | os.PathLike, num_categories: int, seed: int = 0) -> Path:
    """An X-Paste ``*_cat_info.json`` (``[{"id", "image_count"}]``, ids 1..N) with long-tailed counts
    (log-uniform 1..10,000), e.g. for the federated loss."""
    counts = np.exp(np.random.default_rng(seed).uniform(0, np.log(10000), num_categories)).astype(int)
    path = Path(path)
    path.write_text(json.dumps([{'id': i + 1, 'image_count': int(c)} for i, c in enumerate(counts)]))
    return path
