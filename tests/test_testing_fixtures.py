"""xpaste_mm.testing: the fixtures the benchmarks and the demo use are deterministic and well-formed, and
every benchmark script imports its data generator from there."""
import importlib.util
import json
import pickle

import numpy as np
import pytest

from xpaste_mm.categories import load_image_counts, load_size_prior
from xpaste_mm.datasets import PoolIndex
from xpaste_mm.testing import (
    make_paths_only_index,
    paste_destination,
    photo_with_object_mask,
    random_detection_batch,
    write_synthetic_image_counts,
    write_synthetic_size_prior,
)
from xpaste_mm.testing.lvis_eval_data import DETS_PER_IMAGE, NUM_CATEGORIES, generate_lvis_eval_data


def test_images_and_batches_are_deterministic_and_well_formed():
    image, mask = photo_with_object_mask(np.random.default_rng(3), 64)
    again, _ = photo_with_object_mask(np.random.default_rng(3), 64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and mask.shape == (64, 64)
    assert np.array_equal(image, again) and 0 < (mask > 128).mean() < 1
    results = paste_destination(0, 3, size=128, num_classes=5)
    assert results['img'].shape == (128, 128, 3) and len(results['gt_masks']) == 3
    assert results['gt_bboxes_labels'].max() < 5 and results['gt_ignore_flags'].tolist() == [False] * 3
    batch = random_detection_batch(batch_size=2, size=32, num_objects=3, num_classes=4, seed=1)
    assert len(batch['inputs']) == 2 and tuple(batch['inputs'][0].shape) == (3, 32, 32)
    assert all(int(s.gt_instances.labels.max()) < 4 for s in batch['data_samples'])


def test_metadata_files_and_paths_only_index(tmp_path):
    prior = load_size_prior(write_synthetic_size_prior(tmp_path / 'area.json', num_categories=12))
    assert sorted(prior) == list(range(1, 13)) and all(0.01 <= m <= 0.7 for m, _ in prior.values())
    counts = load_image_counts(write_synthetic_image_counts(tmp_path / 'cat_info.json', 12))
    assert sorted(counts) == list(range(1, 13)) and min(counts.values()) >= 1
    index = PoolIndex.load(make_paths_only_index(tmp_path / 'big.npz', 500, num_categories=7))
    assert len(index) == 500 and set(np.unique(index.category_id)) <= set(range(1, 8))
    assert index.relpath(0).startswith('LVIS_gen_FG_') and not index.path(0).exists()


def test_lvis_eval_data_is_cached_and_complete(tmp_path):
    gt_path, results_path, pred_path = generate_lvis_eval_data(3, None, seed=0, out_dir=tmp_path)
    gt = json.loads(gt_path.read_text())
    predictions = pickle.loads(pred_path.read_bytes())
    assert len(gt['categories']) == NUM_CATEGORIES and len(gt['images']) == 3
    assert [len(p['scores']) for p in predictions] == [DETS_PER_IMAGE] * 3
    records = json.loads(results_path.read_text())
    assert len(records) == 3 * DETS_PER_IMAGE and {r['image_id'] for r in records} == {1, 2, 3}
    assert {r['category_id'] for r in records} <= {c['id'] for c in gt['categories']}
    assert generate_lvis_eval_data(3, None, seed=0, out_dir=tmp_path) == (gt_path, results_path, pred_path)


@pytest.mark.parametrize('name', ['benchmark_lvis_eval', 'benchmark_model', 'benchmark_paste',
                                  'benchmark_pool_filter'])
def test_benchmark_scripts_import_their_generators(repo_root, name):
    path = repo_root / 'tools' / 'analysis_tools' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main)
