"""Paste statistics: XPasteCopyPaste's per-image record, PasteStatsHook's aggregation across dataloader
workers and ranks, and the no-paste warning/stop on a pool of unreadable crops."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, HOOKS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from xpaste_mm.datasets import compute_category_stats, save_category_stats
from xpaste_mm.datasets.transforms import PackXPasteInputs, PreparedInstance, XPasteCopyPaste
from xpaste_mm.engine.hooks import PasteStatsHook
from xpaste_mm.engine.hooks import paste_stats_hook as hook_module
from xpaste_mm.testing import make_synthetic_pool
from xpaste_mm.utils.xpaste_config import add_xpaste

register_all_modules(init_default_scope=True)
TINY_MASK_RCNN = 'configs/xpaste/mask-rcnn_r18-tiny_fpn_40i_synthetic-lvis.py'


@pytest.fixture(scope='module')
def pool_and_stats(synthetic_lvis, tmp_path_factory):
    """3 crops per synthetic category and the category statistics (with r/c/f groups) of the train split."""
    root = tmp_path_factory.mktemp('paste_stats_pool')
    index = make_synthetic_pool(root / 'pool', list(range(1, 9)), 3, size_range=(16, 48), seed=1)
    stats = save_category_stats(compute_category_stats(synthetic_lvis.train_ann),
                                root / 'category_stats.json')
    return index, stats


@pytest.fixture
def unreadable_pool(tmp_path):
    """A pool whose crop files exist (the start-up check passes) but are not images."""
    index = make_synthetic_pool(tmp_path / 'bad_pool', list(range(1, 9)), 2, size_range=(16, 32), seed=2)
    for png in (tmp_path / 'bad_pool').rglob('*.png'):
        png.write_bytes(b'not a png')
    return index


def _results(height: int = 120, width: int = 160, boxes=((10, 10, 50, 60), (70, 20, 150, 100))) -> dict:
    masks = np.zeros((len(boxes), height, width), np.uint8)
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        m[y0:y1, x0:x1] = 1
    bitmaps = BitmapMasks(masks, height, width)
    return dict(img=np.full((height, width, 3), 90, np.uint8), img_shape=(height, width),
                gt_bboxes=bitmaps.get_bboxes('hbox'), gt_bboxes_labels=np.arange(len(boxes), dtype=np.int64),
                gt_masks=bitmaps, gt_ignore_flags=np.zeros(len(boxes), bool))


def test_record_counts_what_the_transform_pasted(pool_and_stats, synthetic_lvis):
    index, stats = pool_and_stats
    transform = XPasteCopyPaste(pool_file=str(index), stats_file=str(stats), max_num_pasted=12)
    categories = sorted(json.loads(synthetic_lvis.train_ann.read_text())['categories'], key=lambda c: c['id'])
    group_of_label = [c['frequency'] for c in categories]  # label i = i-th smallest category id
    np.random.seed(0)
    totals = Counter()
    for _ in range(40):
        out = transform(_results())
        record, flags = out['paste_stats'], out['gt_is_pasted']
        groups = Counter(group_of_label[label] for label in out['gt_bboxes_labels'][flags])
        assert record['pasted'] == flags.sum()
        assert record['no_paste'] == int(flags.sum() == 0)
        assert (record['pasted_r'], record['pasted_c'], record['pasted_f']) == (groups['r'], groups['c'],
                                                                                groups['f'])
        assert record['grouped'] == 1 and record['unreadable'] == 0
        assert record['occluded'] >= 2 - (~flags).sum()  # originals lost are occlusion drops
        totals.update(record)
    assert totals['images'] == 40 and totals['pasted'] > 40 and 0 < totals['no_paste'] < 40
    packed = PackXPasteInputs()(out)['data_samples']
    assert packed.metainfo['paste_stats'] == record


def test_occlusion_drops_are_counted(pool_and_stats):
    index, stats = pool_and_stats
    transform = XPasteCopyPaste(pool_file=str(index), stats_file=str(stats))
    cover = np.ones((70, 70), np.uint8)
    big = PreparedInstance(x0=5, y0=5, bgr=np.zeros((70, 70, 3), np.uint8), alpha=cover * 255, mask=cover,
                           label=3, blend='basic')
    out = transform.composite(_results(), [big])  # hides the first original (10..50 x 10..60) entirely
    assert out['gt_is_pasted'].tolist() == [False, True]
    assert out['paste_stats']['occluded'] == 1 and out['paste_stats']['pasted'] == 1


def test_unreadable_crops_are_counted(unreadable_pool, pool_and_stats):
    _, stats = pool_and_stats
    transform = XPasteCopyPaste(pool_file=str(unreadable_pool), stats_file=str(stats), max_num_pasted=6)
    np.random.seed(1)
    records = [transform(_results())['paste_stats'] for _ in range(10)]
    assert sum(r['pasted'] for r in records) == 0 and all(r['no_paste'] for r in records)
    assert sum(r['unreadable'] for r in records) == transform.pool.skipped_reads > 0


def _stub_runner(iteration: int, name: str) -> SimpleNamespace:
    return SimpleNamespace(iter=iteration, max_iters=1000, hooks=[],
                           message_hub=MessageHub.get_instance(name))


def _paste_loader(synthetic_lvis, pool: Path, stats: Path, num_workers: int) -> DataLoader:
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='XPasteCopyPaste', pool_file=str(pool), stats_file=str(stats), max_num_pasted=6),
                dict(type='PackXPasteInputs')]
    dataset = DATASETS.build(dict(type='LVISV1Dataset', data_root=str(synthetic_lvis.root),
                                  ann_file='annotations/lvis_v1_train.json', data_prefix=dict(img=''),
                                  pipeline=pipeline))
    return DataLoader(dataset, batch_size=2, num_workers=num_workers, persistent_workers=num_workers > 0,
                      collate_fn=pseudo_collate)


@pytest.mark.parametrize('stop', [False, True])
def test_unreadable_pool_warns_or_stops_training(synthetic_lvis, unreadable_pool, pool_and_stats, stop,
                                                 monkeypatch):
    warnings = []
    monkeypatch.setattr(hook_module, 'print_log', lambda msg, **kwargs: warnings.append(msg))
    hook = PasteStatsHook(interval=2, no_paste_window=4, stop_on_no_paste=stop)
    loader = _paste_loader(synthetic_lvis, unreadable_pool, pool_and_stats[1], num_workers=0)
    batches = iter(loader)
    hook.after_train_iter(_stub_runner(0, f'unreadable{stop}'), 0, next(batches))
    hook.after_train_iter(_stub_runner(1, f'unreadable{stop}'), 1, next(batches))  # 2 iterations: no alarm
    assert not warnings
    hook.after_train_iter(_stub_runner(2, f'unreadable{stop}'), 2, next(batches))
    if stop:
        with pytest.raises(RuntimeError, match='no instance was pasted during the last 4 iter') as error:
            hook.after_train_iter(_stub_runner(3, f'unreadable{stop}'), 3, next(batches))
        assert 'pool crop(s) were unreadable' in str(error.value)
    else:
        hook.after_train_iter(_stub_runner(3, f'unreadable{stop}'), 3, next(batches))
        assert len(warnings) == 1 and 'pool crop(s) were unreadable' in warnings[0]
    hub = MessageHub.get_instance(f'unreadable{stop}')
    assert hub.get_scalar('train/paste/per_img').current() == 0
    assert hub.get_scalar('train/paste/no_paste').current() == 1
    assert hub.get_scalar('train/paste/unreadable').current() > 0


def test_batches_without_records_are_reported(monkeypatch):
    warnings = []
    monkeypatch.setattr(hook_module, 'print_log', lambda msg, **kwargs: warnings.append(msg))
    hook = PasteStatsHook(interval=1, no_paste_window=1)
    hook.after_train_iter(_stub_runner(0, 'unrecorded'), 0, dict(data_samples=[DetDataSample()] * 2))
    assert 'carry no paste record' in warnings[0] and 'PackXPasteInputs' in warnings[0]


@HOOKS.register_module(force=True)
class CountPastedFlags(Hook):
    """Independent count for the test: pasted flags of the packed ground truth, per logger interval."""

    priority = 'LOWEST'

    def __init__(self, interval: int) -> None:
        self.interval, self.counts, self._current = interval, [], [0, 0]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for sample in data_batch['data_samples']:
            self._current[0] += 1
            self._current[1] += int(sample.gt_instances.is_pasted.sum())
        if self.every_n_train_iters(runner, self.interval):
            self.counts.append(tuple(self._current))
            self._current = [0, 0]


def test_training_log_matches_an_independent_count_with_persistent_workers(
        synthetic_lvis, pool_and_stats, tmp_path, repo_root):
    pool, stats = pool_and_stats
    cfg = Config.fromfile(str(repo_root / TINY_MASK_RCNN))
    cfg.train_dataloader.dataset.update(data_root=str(synthetic_lvis.root))
    cfg.train_dataloader.update(num_workers=2, persistent_workers=True)
    cfg.train_dataloader, cfg.custom_hooks = add_xpaste(cfg, str(pool), str(stats), max_num_pasted=8)
    cfg.custom_hooks.append(dict(type='CountPastedFlags', interval=3))
    cfg.update(work_dir=str(tmp_path / 'work'), train_cfg=dict(type='IterBasedTrainLoop', max_iters=6),
               val_cfg=None, val_dataloader=None, val_evaluator=None, test_cfg=None, test_dataloader=None,
               test_evaluator=None)
    cfg.default_hooks.logger.interval = 3
    cfg.default_hooks.checkpoint.interval = 100
    runner = Runner.from_cfg(cfg)
    runner.train()
    independent = next(h for h in runner.hooks if isinstance(h, CountPastedFlags)).counts
    scalars = [json.loads(line) for line in next((tmp_path / 'work').glob('*/vis_data/scalars.json')).open()]
    logged = [(s['paste/images'], s['paste/per_img'] * s['paste/images'])
              for s in scalars if 'paste/images' in s]
    assert len(logged) == len(independent) == 2
    for (images, pasted), (count_images, count_pasted) in zip(logged, independent):
        assert images == count_images == 6
        assert pasted == pytest.approx(count_pasted)
    assert sum(c for _, c in independent) > 0
    assert all(f'paste/per_img_{g}' in s for s in scalars if 'paste/images' in s for g in 'rcf')


def _rank_main(rank: int, store: str, out: str) -> None:
    torch.distributed.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2)
    hook = PasteStatsHook(interval=1, no_paste_window=0)
    record = dict(images=1, no_paste=rank, pasted=0 if rank else 5, occluded=rank + 1, unreadable=0)
    sample = DetDataSample(metainfo=dict(paste_stats=record))
    runner = _stub_runner(0, f'rank{rank}')
    hook.after_train_iter(runner, 0, dict(data_samples=[sample] * (rank + 1)))
    values = {k: runner.message_hub.get_scalar(f'train/paste/{k}').current()
              for k in ('images', 'per_img', 'no_paste', 'occluded')}
    Path(out, f'{rank}.json').write_text(json.dumps(values))
    torch.distributed.destroy_process_group()


def test_counts_are_summed_over_ranks(tmp_path):
    torch.multiprocessing.start_processes(_rank_main, args=(str(tmp_path / 'store'), str(tmp_path)), nprocs=2,
                                          start_method='fork')
    for rank in range(2):  # rank 0: 1 image with 5 pastes; rank 1: 2 images without
        values = json.loads((tmp_path / f'{rank}.json').read_text())
        assert values == dict(images=3, per_img=5 / 3, no_paste=2 / 3, occluded=1 + 2 * 2)
