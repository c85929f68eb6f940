"""Shared fixtures: synthetic LVIS data (generated once per session) and the repository paths."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach a model hub.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def synthetic_lvis(tmp_path_factory):
    """The default synthetic LVIS dataset (8 categories, 16 train / 8 val images), read-only."""
    from xpaste_mm.datasets import make_synthetic_lvis
    return make_synthetic_lvis(tmp_path_factory.mktemp('synthetic') / 'synthetic_lvis')
