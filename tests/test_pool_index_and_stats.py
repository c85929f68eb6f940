"""Pool index file format, X-Paste JSON import/export and category statistics."""
import json

import numpy as np
import pytest

from xpaste_mm.datasets import (
    PoolFormatError,
    PoolIndex,
    compute_category_stats,
    load_image_counts,
    load_size_prior,
    save_category_stats,
)


def _records(root):
    return [
        dict(category_id=3, path=str(root / 'images/3/0.png'), source='generated', segmenter='grabcut',
             score=25.5, area=0.4, width=30, height=20),
        dict(category_id=1, path='images/1/0.png', source='retrieved', segmenter='clipseg', score=22.0,
             area=0.2, width=10, height=12),
        dict(category_id=3, path='images/3/1.png', source='own', segmenter='clipseg', score=30.0,
             area=0.9, width=5, height=7),
    ]


def test_round_trip_sorted_relative_and_memory_mapped(tmp_path):
    index = PoolIndex.from_records(_records(tmp_path), root=tmp_path)
    index.save(tmp_path / 'pool_index.npz')
    loaded = PoolIndex.load(tmp_path / 'pool_index.npz')
    assert isinstance(loaded.category_id, np.memmap)
    assert loaded.category_id.tolist() == [1, 3, 3]
    assert loaded.relpath(1) == 'images/3/0.png'  # stored relative to the index folder
    assert loaded.path(1) == tmp_path.resolve() / 'images/3/0.png'
    assert loaded.category_ranges() == {1: (0, 1), 3: (1, 3)}
    assert [r['source'] for r in loaded.records()] == ['retrieved', 'generated', 'own']
    assert loaded.records()[2]['segmenter'] == 'clipseg' and loaded.width[1] == 30
    eager = PoolIndex.load(tmp_path / 'pool_index.npz', mmap=False)
    assert eager.records() == loaded.records()


def test_xpaste_json_round_trip(tmp_path):
    index = PoolIndex.from_records(_records(tmp_path), root=tmp_path)
    index.to_xpaste_json(tmp_path / 'pool.json')
    pool = json.loads((tmp_path / 'pool.json').read_text())
    assert set(pool) == {'0', '2'}  # 0-based labels of category ids 1 and 3
    assert all(p.startswith('*/') for paths in pool.values() for p in paths)
    back = PoolIndex.from_xpaste_json(tmp_path / 'pool.json')
    assert back.category_id.tolist() == [1, 3, 3]
    assert [str(back.path(i)) for i in range(3)] == [str(index.path(i)) for i in range(3)]
    # explicit label -> category id mapping (a COCO-style vocabulary with gaps)
    mapped = PoolIndex.from_xpaste_json(tmp_path / 'pool.json', category_ids=[7, 8, 90])
    assert mapped.category_id.tolist() == [7, 90, 90]


def test_bad_pool_inputs_raise_clear_errors(tmp_path):
    (tmp_path / 'raw.json').write_text(json.dumps({'0': ['a.png|a_mask.png']}))
    with pytest.raises(PoolFormatError, match='pre-cropped RGBA'):
        PoolIndex.from_xpaste_json(tmp_path / 'raw.json')
    (tmp_path / 'keys.json').write_text(json.dumps({'cat': ['*a.png']}))
    with pytest.raises(PoolFormatError, match="key 'cat'"):
        PoolIndex.from_xpaste_json(tmp_path / 'keys.json')
    (tmp_path / 'range.json').write_text(json.dumps({'5': ['*a.png']}))
    with pytest.raises(PoolFormatError, match='label 5'):
        PoolIndex.from_xpaste_json(tmp_path / 'range.json', category_ids=[1, 2])
    (tmp_path / 'broken.npz').write_bytes(b'not a zip')
    with pytest.raises(PoolFormatError, match='broken.npz'):
        PoolIndex.load(tmp_path / 'broken.npz')
    with pytest.raises(FileNotFoundError, match='missing.npz'):
        PoolIndex.load(tmp_path / 'missing.npz')
    with pytest.raises(PoolFormatError, match='source'):
        PoolIndex.from_records([dict(category_id=1, path='x.png', source='web')], root=tmp_path)


def test_category_stats_match_hand_computation(tmp_path, synthetic_lvis):
    stats = compute_category_stats(synthetic_lvis.train_ann)
    data = json.loads(synthetic_lvis.train_ann.read_text())
    areas = {img['id']: img['width'] * img['height'] for img in data['images']}
    cat = stats['categories'][0]
    sizes = [np.sqrt(a['bbox'][2] * a['bbox'][3] / areas[a['image_id']])
             for a in data['annotations'] if a['category_id'] == cat['id']]
    assert cat['size_mean'] == pytest.approx(np.mean(sizes))
    assert cat['size_std'] == pytest.approx(np.std(sizes))
    assert cat['instance_count'] == len(sizes)
    save_category_stats(stats, tmp_path / 'category_stats.json')
    prior = load_size_prior(tmp_path / 'category_stats.json')
    assert prior[cat['id']] == pytest.approx((np.mean(sizes), np.std(sizes)))
    counts = load_image_counts(tmp_path / 'category_stats.json')
    assert counts == load_image_counts(synthetic_lvis.train_ann)


def test_original_xpaste_metadata_formats_are_read(tmp_path):
    (tmp_path / 'area_mean_std2.json').write_text(json.dumps({'1': [0.1, 0.05], '2': [0.3, 0.0]}))
    assert load_size_prior(tmp_path / 'area_mean_std2.json') == {1: (0.1, 0.05), 2: (0.3, 0.0)}
    (tmp_path / 'cat_info.json').write_text(json.dumps([{'id': 1, 'image_count': 4, 'name': 'a'}]))
    assert load_image_counts(tmp_path / 'cat_info.json') == {1: 4}
    (tmp_path / 'bad.json').write_text('{"annotations": []}')
    with pytest.raises(ValueError, match='bad.json.*"images"'):
        compute_category_stats(tmp_path / 'bad.json')
