"""Shared fixtures: synthetic LVIS data (generated once per session) and the repository paths."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach a model hub.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
# One OpenMP/MKL thread in every process the tests start (tools run as subprocesses): tiny models gain
# nothing from more, and on a busy 2-core machine competing thread pools make steps many times slower.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def synthetic_lvis(tmp_path_factory):
    """The default synthetic LVIS dataset (8 categories, 16 train / 8 val images), read-only."""
    from xpaste_mm.datasets import make_synthetic_lvis
    return make_synthetic_lvis(tmp_path_factory.mktemp('synthetic') / 'synthetic_lvis')


@pytest.fixture(scope='session', autouse=True)
def _one_torch_thread():
    """Tiny CPU workloads: one intra-op thread avoids oversubscribing the 2-core CI machine (with two
    threads competing, small-model steps were several times slower)."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope='session')
def tiny(tmp_path_factory):
    """Tiny random-weight models (diffusers, CLIPSeg, open_clip, BiRefNet) built once per session."""
    from pool_helpers import tiny_models_for_session
    return tiny_models_for_session(tmp_path_factory)
