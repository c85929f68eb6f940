"""Synthetic LVIS v1 data: complete fields, determinism, loadable by lvis-api and mmdet."""
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from xpaste_mm.datasets import category_names, load_class_names, make_synthetic_lvis

CATEGORY_FIELDS = {'id', 'name', 'synonyms', 'def', 'synset', 'frequency', 'image_count',
                   'instance_count'}
IMAGE_FIELDS = {'id', 'width', 'height', 'coco_url', 'neg_category_ids', 'not_exhaustive_category_ids'}


def _load(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def test_every_lvis_field_present_and_consistent(synthetic_lvis):
    for ann_file, split in ((synthetic_lvis.train_ann, 'train'), (synthetic_lvis.val_ann, 'val')):
        data = _load(ann_file)
        assert len(data['categories']) == 8
        for cat in data['categories']:
            assert CATEGORY_FIELDS <= cat.keys()
        assert {c['frequency'] for c in data['categories']} == {'r', 'c', 'f'}
        sizes = {}
        for img in data['images']:
            assert IMAGE_FIELDS <= img.keys()
            assert f'/{split}2017/' in img['coco_url']
            file = synthetic_lvis.root / img['coco_url'].split('cocodataset.org/')[1]
            assert file.is_file()
            sizes[img['id']] = (img['height'], img['width'])
        present = {}
        for ann in data['annotations']:
            h, w = sizes[ann['image_id']]
            x, y, bw, bh = ann['bbox']
            assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h
            rle = mask_utils.frPyObjects(ann['segmentation'], h, w)
            assert mask_utils.area(mask_utils.merge(rle)) > 0
            present.setdefault(ann['image_id'], set()).add(ann['category_id'])
        for img in data['images']:
            assert not set(img['neg_category_ids']) & present.get(img['id'], set())
            assert set(img['not_exhaustive_category_ids']) <= present.get(img['id'], set())
        counts = {c['id']: c['instance_count'] for c in data['categories']}
        assert sum(counts.values()) == len(data['annotations'])


def test_deterministic_per_seed(tmp_path):
    a = make_synthetic_lvis(tmp_path / 'a', num_train=3, num_val=2, seed=5)
    b = make_synthetic_lvis(tmp_path / 'b', num_train=3, num_val=2, seed=5)
    c = make_synthetic_lvis(tmp_path / 'c', num_train=3, num_val=2, seed=6)
    assert a.train_ann.read_bytes() == b.train_ann.read_bytes()
    assert a.train_ann.read_bytes() != c.train_ann.read_bytes()
    first = sorted((a.root / 'train2017').iterdir())[0].name
    assert (a.root / 'train2017' / first).read_bytes() == (b.root / 'train2017' / first).read_bytes()


def test_loadable_by_lvis_api_and_mmdet(synthetic_lvis):
    from lvis import LVIS
    from mmdet.datasets import LVISV1Dataset
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    api = LVIS(str(synthetic_lvis.val_ann))
    assert len(api.get_img_ids()) == 8
    dataset = LVISV1Dataset(
        data_root=str(synthetic_lvis.root), ann_file='annotations/lvis_v1_train.json',
        data_prefix=dict(img=''), metainfo=dict(classes=synthetic_lvis.class_names),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True)])
    assert len(dataset) == 16
    sample = dataset[0]
    assert sample['img'].shape[:2] == sample['gt_masks'].masks.shape[1:]
    labels = np.concatenate([dataset[i]['gt_bboxes_labels'] for i in range(len(dataset))])
    assert labels.min() >= 0 and labels.max() < 8


def test_class_names_and_config_agree(synthetic_lvis, repo_root):
    from mmengine.config import Config
    assert load_class_names(synthetic_lvis.train_ann) == category_names(8) == synthetic_lvis.class_names
    cfg = Config.fromfile(repo_root / 'configs/_base_/datasets/synthetic_lvis_instance.py')
    assert tuple(cfg.metainfo['classes']) == category_names(8)


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match='num_categories'):
        make_synthetic_lvis(tmp_path, num_categories=0)
