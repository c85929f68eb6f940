"""xpaste_mm.categories: one reader of category lists, the label rule and its checks (duplicates, order,
statistics that do not match the dataset)."""
import ast
import json
import subprocess
import sys

import pytest

from xpaste_mm.categories import (
    CategoryError,
    label_map,
    load_image_counts,
    read_ann_categories,
    read_category_list,
    sorted_ids,
)
from xpaste_mm.datasets import compute_category_stats
from xpaste_mm.datasets.transforms import XPasteCopyPaste
from xpaste_mm.datasets.transforms import xpaste_copy_paste as xpaste_module
from xpaste_mm.testing import make_synthetic_pool


def _ann_file(path, ids):
    categories = [dict(id=i, name=f'c{n}', frequency='r') for n, i in enumerate(ids)]
    images = [dict(id=1, width=100, height=80)]
    annotations = [dict(id=1, image_id=1, category_id=ids[0], bbox=[0, 0, 10, 10])]
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return path


def test_read_dataset_categories_matches_json(tmp_path):
    categories = [dict(id=i, name=f'n"{i}"', frequency='rcf'[i % 3]) for i in (1, 5, 90)]
    data = dict(info={'note': 'categories'}, images=[dict(id=1, categories=[1])],
                annotations=[dict(id=1, image_id=1, category_id=5)], categories=categories)
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(data))
    assert read_ann_categories(path) == categories
    path.write_text(json.dumps(dict(categories=categories, images=[], annotations=[])))
    assert read_ann_categories(path) == categories
    path.write_text(json.dumps(dict(images=[])))
    with pytest.raises(ValueError, match='no top-level "categories"'):
        read_ann_categories(path)


def test_label_is_the_rank_of_the_sorted_id():
    assert label_map([90, 1, 5]) == {1: 0, 5: 1, 90: 2}
    assert sorted_ids(range(3, 0, -1)) == [1, 2, 3]
    with pytest.raises(CategoryError, match=r'category_ids: duplicate category ids \[5\]'):
        label_map([5, 1, 5])


def _cat_info(path, ids):
    path.write_text(json.dumps([dict(id=i, image_count=3, name=f'c{i}') for i in ids]))
    return path


def test_every_reader_refuses_duplicate_ids(tmp_path):
    ann = _ann_file(tmp_path / 'dup.json', [1, 2, 2])
    info = _cat_info(tmp_path / 'dup_info.json', [1, 2, 2])
    for reader, path in ((read_ann_categories, ann), (read_category_list, ann), (read_category_list, info),
                         (load_image_counts, info)):
        with pytest.raises(CategoryError, match=rf'{path.name}: duplicate category ids \[2\]'):
            reader(path)


def test_stats_refuses_duplicate_category_ids(tmp_path):
    """``xpaste-pool stats`` refuses what the vocabulary loader refuses, and writes nothing (issue 13.4)."""
    ann = _ann_file(tmp_path / 'train.json', [1, 2, 2])
    with pytest.raises(CategoryError, match=r'train.json: duplicate category ids \[2\]'):
        compute_category_stats(ann)
    from pool_builder.cli import main
    out = tmp_path / 'category_stats.json'
    assert main(['stats', '--ann-file', str(ann), '--out', str(out)]) == 2
    assert not out.exists()


@pytest.fixture(scope='module')
def pool_file(tmp_path_factory):
    return make_synthetic_pool(tmp_path_factory.mktemp('pool'), [1, 2, 3], 2, size_range=(8, 16))


def test_transform_reports_duplicate_ids_not_unsorted(tmp_path, pool_file):
    ann = _ann_file(tmp_path / 'train.json', [1, 3, 1])
    stats = tmp_path / 'area_mean_std2.json'
    stats.write_text(json.dumps({'1': [0.1, 0.0], '3': [0.1, 0.0]}))
    with pytest.raises(CategoryError, match=r'train.json: duplicate category ids \[1\]') as info:
        XPasteCopyPaste(pool_file=str(pool_file), stats_file=str(stats), ann_file=str(ann))
    assert 'not sorted' not in str(info.value)


def test_transform_refuses_foreign_stats_and_warns_on_partial(tmp_path, pool_file, monkeypatch):
    """A stats file of another dataset is refused; one lacking some categories warns with the count."""
    foreign = tmp_path / 'foreign.json'
    foreign.write_text(json.dumps({'101': [0.2, 0.1], '102': [0.3, 0.1]}))
    with pytest.raises(CategoryError, match='foreign.json: shares no category id with the dataset'):
        XPasteCopyPaste(pool_file=str(pool_file), stats_file=str(foreign), category_ids=[1, 2, 3, 4])
    messages = []
    monkeypatch.setattr(xpaste_module, 'print_log', lambda msg, **kw: messages.append(msg))
    partial = tmp_path / 'partial.json'
    partial.write_text(json.dumps({'1': [0.2, 0.1], '9': [0.3, 0.1]}))
    transform = XPasteCopyPaste(pool_file=str(pool_file), stats_file=str(partial), category_ids=[1, 2, 3, 4])
    assert any('no statistics for 3 of the 4 dataset categories' in m and '[2, 3, 4]' in m for m in messages)
    assert transform.category_ids == [1, 2, 3, 4]


def test_categories_module_is_light_and_models_do_not_import_datasets(repo_root):
    """pool_builder imports the categories module: it must not pull torch or mmdet in."""
    module_path = str(repo_root / 'xpaste_mm' / 'categories.py')
    code = ('import importlib.util, sys\n'
            f'spec = importlib.util.spec_from_file_location("categories", {module_path!r})\n'
            'spec.loader.exec_module(importlib.util.module_from_spec(spec))\n'
            'print(sorted(m for m in ("torch", "mmdet", "mmengine", "numpy") if m in sys.modules))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'
    for path in (repo_root / 'xpaste_mm' / 'models').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert 'datasets' not in (node.module or ''), f'{path} imports {node.module}'
