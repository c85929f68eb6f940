"""X-Paste configs: every one has an equal-schedule baseline twin, ``add_xpaste`` adds X-Paste to any
instance-segmentation config (the user guide's example of an mmdet detector we have no recipe for), and
the Mask R-CNN LVIS recipes train and evaluate on CPU through tools/train.py (synthetic LVIS)."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.dataset import Compose

from xpaste_mm.datasets import compute_category_stats, save_category_stats
from xpaste_mm.testing import make_synthetic_pool
from xpaste_mm.utils.xpaste_config import add_copy_paste, add_xpaste

register_all_modules(init_default_scope=True)
REPO = Path(__file__).resolve().parents[1]
XPASTE = REPO / 'configs/xpaste'
XPASTE_CONFIGS = sorted(p.name for p in XPASTE.glob('*-xpaste*.py'))
MASK_RCNN_RECIPES = sorted(p.name for p in XPASTE.glob('mask-rcnn_r50_fpn_*_lvis-v1*.py'))
PASTE_STEPS = ('XPasteCopyPaste', 'CachedCopyPaste')

_spec = importlib.util.spec_from_file_location('compare_runs', REPO / 'tools/analysis_tools/compare_runs.py')
compare_runs = importlib.util.module_from_spec(_spec)
sys.modules['compare_runs'] = compare_runs
_spec.loader.exec_module(compare_runs)


def twin_of(name: str) -> str:
    """The equal-schedule baseline of an X-Paste config: the same name without the method suffix."""
    return re.sub(r'-xpaste(-copypaste)?(?=\.py$)', '', name)


def _train_pipelines(cfg: Config) -> list[list[dict]]:
    dataset = cfg.train_dataloader.dataset
    found = []
    while dataset is not None:
        if 'pipeline' in dataset:
            found.append(dataset.pipeline)
        dataset = dataset.get('dataset')
    return found


def test_xpaste_configs_are_found():
    assert len(XPASTE_CONFIGS) >= 10 and len(MASK_RCNN_RECIPES) == 6


@pytest.mark.parametrize('name', XPASTE_CONFIGS)
def test_every_xpaste_config_has_an_equal_schedule_twin(name):
    assert (XPASTE / twin_of(name)).is_file(), f'{name} has no equal-schedule baseline {twin_of(name)}'
    method, baseline = (Config.fromfile(str(XPASTE / n)) for n in (name, twin_of(name)))
    assert compare_runs.settings(method) == compare_runs.settings(baseline)  # schedule, EMA, evaluation
    assert method.model == baseline.model
    assert [h.type for h in method.custom_hooks].count('PasteStatsHook') == 1  # statistics always logged
    # The pipelines differ by the paste steps (and the packer that carries the pasted flag) only.
    for with_paste, without in zip(_train_pipelines(method), _train_pipelines(baseline)):
        assert 'XPasteCopyPaste' in [t.type for t in with_paste]
        assert ('CachedCopyPaste' in [t.type for t in with_paste]) == name.endswith('-copypaste.py')
        stripped = [dict(t, type='PackDetInputs') if t.type == 'PackXPasteInputs' else t
                    for t in with_paste if t.type not in PASTE_STEPS]
        assert stripped == without


def _user_guide_example() -> str:
    text = (REPO / 'docs/user_guide.md').read_text()
    block = re.search(r'```python\n(# my_detectors/[^\n]*\n.*?)```', text, flags=re.S)
    assert block, 'docs/user_guide.md lost its add_xpaste example (a ```python block starting with ' \
                  '"# my_detectors/...")'
    return block[1]


def test_user_guide_example_adds_xpaste_to_an_mmdet_detector_in_three_lines(tmp_path, synthetic_lvis):
    code = _user_guide_example()
    assert len([line for line in code.splitlines() if line and not line.startswith('#')]) == 3
    config = tmp_path / 'example.py'
    config.write_text(code)
    cfg = Config.fromfile(str(config))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ not in ('CenterNet2', 'MaskRCNN')  # a detector we wrote no recipe for
    pipeline = cfg.train_dataloader.dataset.pipeline
    types = [t.type for t in pipeline]
    assert types.index('XPasteCopyPaste') == types.index('RandomFlip') + 1 and types[-1] == 'PackXPasteInputs'
    assert 'PasteStatsHook' in [h.type for h in cfg.custom_hooks]
    # the pipeline builds and runs on the pasting steps with a real pool
    pool = make_synthetic_pool(tmp_path / 'pool', list(range(1, 9)), 2, size_range=(16, 40))
    stats = save_category_stats(compute_category_stats(synthetic_lvis.train_ann), tmp_path / 'stats.json')
    paste = next(t for t in pipeline if t.type == 'XPasteCopyPaste')
    steps = Compose([dict(paste, pool_file=str(pool), stats_file=str(stats)), dict(type='PackXPasteInputs')])
    assert type(steps.transforms[0]).__name__ == 'XPasteCopyPaste'


def test_add_xpaste_refuses_what_it_cannot_do():
    boxes_only = Config(dict(train_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]))))
    with pytest.raises(ValueError, match='no instance masks'):
        add_xpaste(boxes_only, 'pool.npz', 'stats.json')
    no_packer = Config(dict(train_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadAnnotations', with_mask=True)]))))
    with pytest.raises(ValueError, match='cannot place XPasteCopyPaste'):
        add_xpaste(no_packer, 'pool.npz', 'stats.json')
    wrapped = Config(dict(train_dataloader=dict(dataset=dict(type='RepeatDataset', dataset=dict(pipeline=[
        dict(type='LoadAnnotations', with_mask=True), dict(type='Pad', size=(64, 64)),
        dict(type='PackDetInputs', meta_keys=('img_id',))])))))
    loader, hooks = add_xpaste(wrapped, 'pool.npz', 'stats.json', stats_hook=dict(stop_on_no_paste=True))
    assert [t['type'] for t in loader.dataset.dataset.pipeline] == [
        'LoadAnnotations', 'XPasteCopyPaste', 'Pad', 'PackXPasteInputs']
    assert loader.dataset.dataset.pipeline[-1].meta_keys == ('img_id',)
    assert hooks == [dict(type='PasteStatsHook', stop_on_no_paste=True)]
    with pytest.raises(ValueError, match='already has XPasteCopyPaste'):
        add_xpaste(Config(dict(train_dataloader=loader)), 'pool.npz', 'stats.json')
    with pytest.raises(ValueError, match='call add_xpaste first'):
        add_copy_paste(wrapped)


@pytest.fixture(scope='module')
def lvis_workspace(synthetic_lvis, tmp_path_factory):
    """A folder laid out as the recipes expect (data/lvis_v1, data/xpaste_pool) with synthetic data."""
    root = tmp_path_factory.mktemp('recipes')
    shutil.copytree(synthetic_lvis.root, root / 'data/lvis_v1')
    make_synthetic_pool(root / 'data/xpaste_pool/pool', list(range(1, 9)), 2, size_range=(16, 48))
    save_category_stats(compute_category_stats(synthetic_lvis.train_ann),
                        root / 'data/lvis_v1/metadata/category_stats.json')
    return root


# Tiny sizes for a CPU smoke run: ResNet-18 without pretrained weights, 8 classes, 2 training images
# at ~333 x 200 (1 epoch = 1 iteration), 1 validation image.
SMOKE_OPTIONS = [
    'model.backbone.depth=18', 'model.backbone.init_cfg=None', 'model.neck.in_channels=[64,128,256,512]',
    'model.roi_head.bbox_head.num_classes=8', 'model.roi_head.mask_head.num_classes=8',  # synthetic LVIS
    'model.test_cfg.rpn.max_per_img=50', 'model.test_cfg.rcnn.max_per_img=30',
    'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'train_dataloader.dataset.dataset.indices=2',
    'train_dataloader.dataset.dataset.pipeline.2.scales=[(333,160),(333,200)]',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'val_dataloader.dataset.indices=1',
    'val_dataloader.dataset.pipeline.1.scale=(333,200)',
]


@pytest.mark.parametrize('name', [n for n in MASK_RCNN_RECIPES if '_8xb2-1x_' in n])
def test_mask_rcnn_recipe_trains_and_evaluates_on_cpu(name, lvis_workspace):
    work = lvis_workspace / 'work' / name
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools/train.py'), str(XPASTE / name), '--work-dir', str(work),
         '--cfg-options', *SMOKE_OPTIONS], cwd=lvis_workspace, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1'))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'loss_mask' in log and 'lvis/segm_AP' in log
    if '-xpaste' in name:
        assert 'paste/per_img' in log
    run = compare_runs.read_run(work)  # compare_runs reads what mmengine really wrote
    assert run.step == 1 and 0 <= run.metrics['lvis/segm_AP'] <= 1
    assert compare_runs.settings(run.config)['schedule: train_cfg']['max_epochs'] == 1


@pytest.mark.parametrize('name', [n for n in MASK_RCNN_RECIPES if '_8xb2-2x_' in n])
def test_mask_rcnn_2x_recipe_is_its_1x_recipe_on_the_2x_schedule(name):
    """The 2x recipes differ from the 1x ones (each trained above) only by the schedule, so the 1x smoke
    runs cover them: model, data pipelines, hooks and evaluation are equal; 24 epochs, lr steps 16/22."""
    two = Config.fromfile(XPASTE / name)
    one = Config.fromfile(XPASTE / name.replace('_8xb2-2x_', '_8xb2-1x_'))
    schedule = ('train_cfg', 'param_scheduler', 'max_epochs')
    for key in set(one.keys()) | set(two.keys()):
        if key not in schedule:
            assert one.get(key) == two.get(key), key
    assert two.train_cfg.max_epochs == 24 and one.train_cfg.max_epochs == 12
    steps = [s for s in two.param_scheduler if s.type == 'MultiStepLR']
    assert steps and steps[0].milestones == [16, 22]
