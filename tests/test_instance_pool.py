"""InstancePool: loading, category -> label mapping, start-up checks, sampling, crop reading, cache."""
import json
import pickle

import cv2
import numpy as np
import pytest

from xpaste_mm.datasets import InstancePool, PoolFormatError, PoolIndex
from xpaste_mm.datasets import instance_pool as instance_pool_module
from xpaste_mm.datasets.instance_pool import CropCache
from xpaste_mm.testing import make_synthetic_pool


@pytest.fixture(scope='module')
def pool_file(tmp_path_factory):
    """Categories 3, 7, 9 with 1, 4 and 20 crops (COCO-like non-contiguous ids)."""
    return make_synthetic_pool(tmp_path_factory.mktemp('pool'), [3, 7, 9], [1, 4, 20], size_range=(8, 20))


def test_npz_pool_maps_sorted_dataset_ids_to_labels(pool_file):
    pool = InstancePool.from_file(pool_file, category_ids=[9, 1, 7, 3, 12])
    assert pool.check.num_instances == 25 and pool.check.num_usable == 25
    np.testing.assert_array_equal(pool.category_ids, [3, 7, 9])
    np.testing.assert_array_equal(pool.labels, [1, 2, 3])  # sorted ids: 1, 3, 7, 9, 12
    rows = np.arange(25)
    np.testing.assert_array_equal(pool.label_of_rows(rows), [1] + [2] * 4 + [3] * 20)
    assert pool.num_labels == 5


def test_lvis_convention_without_category_ids(pool_file):
    pool = InstancePool.from_file(pool_file)
    np.testing.assert_array_equal(pool.labels, [2, 6, 8])


def test_xpaste_json_pool_is_read_with_dataset_ids(pool_file, tmp_path):
    index = PoolIndex.load(pool_file)
    json_path = tmp_path / 'pool.json'
    index.to_xpaste_json(json_path, category_ids=[1, 3, 7, 9])
    stored = json.loads(json_path.read_text())
    assert sorted(stored) == ['1', '2', '3'] and stored['1'][0].startswith('*')
    pool = InstancePool.from_file(json_path, category_ids=[9, 7, 3, 1])
    np.testing.assert_array_equal(pool.category_ids, [3, 7, 9])
    np.testing.assert_array_equal(pool.labels, [1, 2, 3])
    crop = pool.read_crop(0)
    assert crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 4


def test_unknown_categories_are_excluded_and_reported(pool_file, monkeypatch):
    messages = []
    monkeypatch.setattr(instance_pool_module, 'print_log', lambda msg, **kw: messages.append(msg))
    pool = InstancePool.from_file(pool_file, category_ids=[7, 8])
    assert pool.check.unknown_category_rows == 21
    assert pool.check.unknown_category_ids == [3, 9]
    assert any('21 instance(s)' in m and '[3, 9]' in m for m in messages)
    rows = pool.sample(np.random.default_rng(0), 500, 'random')
    assert set(pool.category_of_rows(rows)) == {7}
    with pytest.raises(PoolFormatError, match='none of its 25 instances'):
        InstancePool.from_file(pool_file, category_ids=[100])


def test_missing_files_are_counted_and_all_missing_is_an_error(tmp_path, monkeypatch):
    index_path = make_synthetic_pool(tmp_path / 'p', [1, 2], 5, size_range=(8, 12))
    (tmp_path / 'p' / 'images' / '2' / '3.png').unlink()
    messages = []
    monkeypatch.setattr(instance_pool_module, 'print_log', lambda msg, **kw: messages.append(msg))
    pool = InstancePool.from_file(index_path, check_files='all')
    assert (pool.check.files_checked, pool.check.files_missing) == (10, 1)
    assert pool.check.missing_examples[0].endswith('images/2/3.png')
    assert any('1 of 10 checked crop files are missing' in m for m in messages)
    for png in (tmp_path / 'p' / 'images').rglob('*.png'):
        png.unlink()
    with pytest.raises(FileNotFoundError, match='none of the 4 crop files'):
        InstancePool.from_file(index_path, check_files=4)


def test_corrupt_crop_is_skipped_counted_and_warned_once(tmp_path, monkeypatch):
    index_path = make_synthetic_pool(tmp_path / 'p', [1], 3, size_range=(8, 12))
    (tmp_path / 'p' / 'images' / '1' / '1.png').write_bytes(b'not a png at all')
    cv2.imwrite(str(tmp_path / 'p' / 'images' / '1' / '2.png'), np.zeros((5, 5, 3), np.uint8))  # no alpha
    messages = []
    monkeypatch.setattr(instance_pool_module, 'print_log', lambda msg, **kw: messages.append(msg))
    pool = InstancePool.from_file(index_path)
    assert pool.read_crop(0) is not None
    assert pool.read_crop(1) is None and pool.read_crop(1) is None
    assert pool.read_crop(2) is None
    assert pool.failed_rows == {1, 2} and pool.skipped_reads == 3
    warnings = [m for m in messages if 'skipping crop' in m]
    assert len(warnings) == 2
    assert 'not a decodable image' in warnings[0] and 'expected an RGBA crop' in warnings[1]


def test_unreadable_index_and_json_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        InstancePool.from_file(tmp_path / 'nope.npz')
    corrupt = tmp_path / 'pool_index.npz'
    corrupt.write_bytes(b'PK\x03\x04 truncated archive')
    with pytest.raises(PoolFormatError, match='pool_index.npz is not a readable .npz'):
        InstancePool.from_file(corrupt)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"0": ["img.png|mask.png"]}')
    with pytest.raises(PoolFormatError, match='not a pre-cropped RGBA path'):
        InstancePool.from_file(bad)


def test_cas_random_is_category_balanced_and_random_follows_counts(pool_file):
    pool = InstancePool.from_file(pool_file, category_ids=[3, 7, 9])
    rng = np.random.default_rng(0)
    cas = np.bincount(pool.label_of_rows(pool.sample(rng, 30000, 'cas_random')), minlength=3) / 30000
    np.testing.assert_allclose(cas, [1 / 3] * 3, atol=0.015)
    flat = np.bincount(pool.label_of_rows(pool.sample(rng, 30000, 'random')), minlength=3) / 30000
    np.testing.assert_allclose(flat, np.array([1, 4, 20]) / 25, atol=0.015)
    rows = pool.sample(rng, 30000, 'cas_random')
    within = np.bincount(rows[pool.label_of_rows(rows) == 2] - 5, minlength=20)
    assert within.min() > 0.6 * within.mean()  # uniform inside the category


def test_cats_random_uses_image_categories_and_falls_back(pool_file):
    pool = InstancePool.from_file(pool_file, category_ids=[1, 3, 7, 9])
    rng = np.random.default_rng(1)
    rows = pool.sample(rng, 4000, 'cats_random', image_labels=np.array([2, 2, 0]))
    assert set(pool.label_of_rows(rows)) == {2}  # label 0 (id 1) has no pool instance
    rows = pool.sample(rng, 4000, 'cats_random', image_labels=np.array([0, 57, -1]))
    assert set(pool.label_of_rows(rows)) == {1, 2, 3}
    rows = pool.sample(rng, 4000, 'cats_random', image_labels=np.zeros(0, dtype=np.int64))
    assert set(pool.label_of_rows(rows)) == {1, 2, 3}
    with pytest.raises(ValueError, match='sample_mode'):
        pool.sample(rng, 3, 'reference')


def test_category_weights_shift_sampling(pool_file):
    pool = InstancePool.from_file(pool_file, category_ids=[3, 7, 9], category_weights={3: 3.0, 9: 0.0})
    freq = np.bincount(pool.label_of_rows(pool.sample(np.random.default_rng(2), 20000, 'cas_random')),
                       minlength=3) / 20000
    np.testing.assert_allclose(freq, [0.75, 0.25, 0.0], atol=0.015)
    with pytest.raises(ValueError, match='no pool category with a positive weight'):
        InstancePool.from_file(pool_file, category_weights={3: 0, 7: 0, 9: 0})


def test_crop_cache_is_bounded_lru():
    cache = CropCache(capacity_bytes=300)
    arrays = {k: np.zeros(100, dtype=np.uint8) for k in range(4)}
    for k in range(3):
        cache.put(k, arrays[k])
    assert cache.get(0) is arrays[0]  # 0 becomes most recent
    cache.put(3, arrays[3])  # evicts 1, the least recently used
    assert cache.get(1) is None and cache.get(2) is arrays[2] and cache.get(3) is arrays[3]
    assert cache.used_bytes == 300 and len(cache) == 3
    cache.put(9, np.zeros(301, dtype=np.uint8))
    assert cache.get(9) is None and cache.used_bytes == 300


def test_read_crop_uses_the_cache(pool_file):
    pool = InstancePool.from_file(pool_file, cache_size_mb=1)
    first = pool.read_crop(4)
    assert pool.read_crop(4) is first and pool.cache.hits == 1
    assert not first.flags.writeable
    no_cache = InstancePool.from_file(pool_file, cache_size_mb=0)
    assert no_cache.read_crop(4) is not no_cache.read_crop(4)
    np.testing.assert_array_equal(no_cache.read_crop(4), first)


def test_pickled_pool_remaps_the_index_and_samples_identically(pool_file):
    pool = InstancePool.from_file(pool_file, category_ids=[3, 7, 9], cache_size_mb=1)
    pool.read_crop(0)
    clone = pickle.loads(pickle.dumps(pool))
    assert isinstance(clone.index.category_id, np.memmap) and len(clone.cache) == 0
    np.testing.assert_array_equal(pool.sample(np.random.default_rng(5), 50),
                                  clone.sample(np.random.default_rng(5), 50))
    np.testing.assert_array_equal(clone.read_crop(3), pool.read_crop(3))
