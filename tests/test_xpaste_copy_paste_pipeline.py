"""XPasteCopyPaste inside mmdet: packing the pasted flag, 'both' mode, dataloader workers, browse tool."""
import copy
import importlib.util
import json

import cv2
import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.dataset import worker_init_fn
from torch.utils.data import DataLoader, Dataset

from xpaste_mm.datasets import compute_category_stats, save_category_stats
from xpaste_mm.datasets.transforms import CachedCopyPaste, PackXPasteInputs, XPasteCopyPaste
from xpaste_mm.testing import make_synthetic_pool


@pytest.fixture(scope='module')
def lvis_pool(synthetic_lvis, tmp_path_factory):
    """A pool of 3 crops per synthetic LVIS category and our category statistics of its train split."""
    root = tmp_path_factory.mktemp('lvis_pool')
    index = make_synthetic_pool(root / 'pool', list(range(1, 9)), 3, size_range=(16, 48), seed=1)
    stats = save_category_stats(compute_category_stats(synthetic_lvis.train_ann),
                                root / 'category_stats.json')
    return index, stats


def box_results(masks: np.ndarray, labels, ignore=None, pasted=None) -> dict:
    n, height, width = masks.shape
    boxes = BitmapMasks(masks, height, width).get_bboxes('hbox')
    results = dict(img=np.full((height, width, 3), 90, np.uint8), img_shape=(height, width), gt_bboxes=boxes,
                   gt_bboxes_labels=np.asarray(labels, np.int64), gt_masks=BitmapMasks(masks, height, width),
                   gt_ignore_flags=np.zeros(n, bool) if ignore is None else np.asarray(ignore, bool))
    if pasted is not None:
        results['gt_is_pasted'] = np.asarray(pasted, bool)
    return results


def test_pack_xpaste_inputs_splits_flags_like_ignore_flags():
    masks = np.zeros((3, 20, 20), np.uint8)
    masks[0, :5, :5] = masks[1, 5:10, 5:10] = masks[2, 10:, 10:] = 1
    packed = PackXPasteInputs()(box_results(masks, [0, 1, 2], ignore=[False, True, False],
                                            pasted=[True, False, False]))
    sample = packed['data_samples']
    assert sample.gt_instances.is_pasted.dtype == torch.bool
    assert sample.gt_instances.is_pasted.tolist() == [True, False]
    assert sample.ignored_instances.is_pasted.tolist() == [False]
    assert sample.gt_instances.labels.tolist() == [0, 2]
    plain = PackXPasteInputs()(box_results(masks, [0, 1, 2]))['data_samples']
    assert plain.gt_instances.is_pasted.tolist() == [False, False, False]
    with pytest.raises(ValueError, match='gt_is_pasted has 2 flags but there are 3 gt_bboxes'):
        PackXPasteInputs()(box_results(masks, [0, 1, 2], pasted=[True, False]))


def test_cached_copy_paste_copies_objects_in_place_and_pads():
    src_masks = np.zeros((2, 50, 70), np.uint8)
    src_masks[0, 30:48, 50:68] = 1  # beyond the smaller destination below -> padding
    src_masks[1, 2:10, 2:10] = 1
    source = box_results(src_masks, [3, 4], pasted=[False, True])  # the pasted one is never copied
    source['img'][30:48, 50:68] = 222
    dst_masks = np.zeros((1, 40, 60), np.uint8)
    dst_masks[0, 25:40, 45:60] = 1
    for seed in range(20):
        transform = CachedCopyPaste()
        np.random.seed(seed)
        first = transform(copy.deepcopy(source))
        assert len(first['gt_bboxes']) == 2  # nothing cached yet: unchanged
        out = transform(box_results(dst_masks, [1]))
        if len(out['gt_bboxes']) > 1:
            break
    assert out['img'].shape == (48, 68, 3) and out['img_shape'] == (48, 68)
    assert out['gt_masks'].masks.shape == (2, 48, 68)
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [1, 3])
    np.testing.assert_array_equal(out['gt_is_pasted'], [False, False])
    np.testing.assert_array_equal(out['gt_bboxes'].numpy(), [[45, 25, 60, 40], [50, 30, 68, 48]])
    assert (out['img'][30:48, 50:68] == 222).all() and (out['img'][40:, :50] == 0).all()
    assert out['gt_masks'].masks[0].sum() == 15 * 15 - 10 * 10  # copied object covers rows 30-39, cols 50-59


def test_both_mode_keeps_flags_aligned_through_packing(lvis_pool):
    index, stats = lvis_pool
    pipeline = [XPasteCopyPaste(pool_file=str(index), stats_file=str(stats), max_num_pasted=12),
                CachedCopyPaste(max_cached_images=3), PackXPasteInputs()]
    rng = np.random.default_rng(0)
    np.random.seed(0)
    copied = pasted = 0
    for _ in range(12):
        masks = np.zeros((3, 64, 80), np.uint8)
        for m in masks:
            x, y = rng.integers(0, 60), rng.integers(0, 44)
            m[y:y + 20, x:x + 20] = 1
        results = box_results(masks, rng.integers(0, 8, 3))
        for transform in pipeline[:2]:
            results = transform(results)
        n = len(results['gt_bboxes'])
        assert len(results['gt_is_pasted']) == n
        pasted += int(results['gt_is_pasted'].sum())
        copied += n - 3 - int(results['gt_is_pasted'].sum())
        packed = pipeline[2](results)
        instances = packed['data_samples'].gt_instances
        assert len(instances.is_pasted) == len(instances.labels) == len(instances.masks)
    assert pasted > 0 and copied > 0


class _PasteDataset(Dataset):
    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 4

    def __getitem__(self, index):
        out = self.transform(dict(img=np.full((48, 48, 3), index, np.uint8)))
        return torch.from_numpy(out['img']), int(out['gt_is_pasted'].sum())


def _load_all(transform, seed):
    from functools import partial
    loader = DataLoader(_PasteDataset(transform), batch_size=1, num_workers=2,
                        worker_init_fn=partial(worker_init_fn, num_workers=2, rank=0, seed=seed))
    return [(img.numpy(), n.item()) for img, n in loader]


def test_dataloader_workers_are_reproducible_under_mmengine_seeding(lvis_pool):
    index, stats = lvis_pool
    transform = XPasteCopyPaste(pool_file=str(index), stats_file=str(stats), max_num_pasted=8)
    first, second, other = _load_all(transform, 5), _load_all(transform, 5), _load_all(transform, 6)
    for (img_a, n_a), (img_b, n_b) in zip(first, second):
        assert n_a == n_b
        np.testing.assert_array_equal(img_a, img_b)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    # workers 0 and 1 get different seeds: images 0 and 1 (plain 0 and plain 1) get different pastes
    assert not np.array_equal(first[0][0] != 0, first[1][0] != 1)


def test_browse_dataset_writes_outlined_pngs(synthetic_lvis, lvis_pool, tmp_path, repo_root):
    index, stats = lvis_pool
    config = tmp_path / 'browse_cfg.py'
    config.write_text(f'''
default_scope = 'mmdet'
custom_imports = dict(imports=['xpaste_mm'], allow_failed_imports=False)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=(160, 160), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute', crop_size=(128, 128), allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='XPasteCopyPaste', pool_file={str(index)!r}, stats_file={str(stats)!r},
         ann_file={str(synthetic_lvis.train_ann)!r}, max_num_pasted=15, blend_modes=('basic', 'gaussian')),
    dict(type='CachedCopyPaste', max_cached_images=4),
    dict(type='PackXPasteInputs'),
]
train_dataloader = dict(dataset=dict(
    type='LVISV1Dataset', data_root={str(synthetic_lvis.root)!r}, ann_file='annotations/lvis_v1_train.json',
    data_prefix=dict(img=''), filter_cfg=dict(filter_empty_gt=True), pipeline=train_pipeline))
''')
    spec = importlib.util.spec_from_file_location(
        'browse_dataset', repo_root / 'tools' / 'analysis_tools' / 'browse_dataset.py')
    browse = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(browse)
    out_dir = tmp_path / 'browse'
    written = browse.main([str(config), '--output-dir', str(out_dir), '--num', '6', '--seed', '3'])
    assert len(written) == 6 and all(p.is_file() for p in written)
    pictures = [cv2.imread(str(p)) for p in written]
    assert all(p is not None and p.ndim == 3 for p in pictures)
    magenta = [int(((p[..., 0] == 255) & (p[..., 1] == 0) & (p[..., 2] == 255)).sum()) for p in pictures]
    green = [int(((p[..., 0] == 0) & (p[..., 1] == 200) & (p[..., 2] == 0)).sum()) for p in pictures]
    assert sum(m > 0 for m in magenta) >= 3 and sum(green) > 0
    again = browse.main([str(config), '--output-dir', str(tmp_path / 'again'), '--num', '6', '--seed', '3'])
    assert all(np.array_equal(cv2.imread(str(a)), p) for a, p in zip(again, pictures))


def test_real_lvis_style_labels_from_stats_file(lvis_pool, synthetic_lvis):
    index, stats = lvis_pool
    transform = XPasteCopyPaste(pool_file=str(index), stats_file=str(stats))
    assert transform.category_ids == sorted(c['id'] for c in json.loads(
        synthetic_lvis.train_ann.read_text())['categories'])
    np.testing.assert_array_equal(transform.pool.labels, np.arange(8))
    np.random.seed(2)
    out = transform(dict(img=np.zeros((100, 100, 3), np.uint8), gt_bboxes=HorizontalBoxes(np.zeros((0, 4))),
                         gt_bboxes_labels=np.zeros(0, np.int64), gt_ignore_flags=np.zeros(0, bool),
                         gt_masks=BitmapMasks(np.zeros((0, 100, 100), np.uint8), 100, 100)))
    assert out['gt_bboxes_labels'].max(initial=0) < 8
