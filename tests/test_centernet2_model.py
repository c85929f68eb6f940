"""The CenterNet2 detector end to end on CPU: the tiny config on synthetic LVIS (losses, a short training
run whose loss falls, evaluation through tools/test.py and LVISMetric) and every CenterNet2 config of
configs/xpaste/ (model, datasets through their pipelines, evaluator)."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, METRICS, MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData

import xpaste_mm  # noqa: F401  (registers the modules)
from xpaste_mm.datasets import PoolIndex, compute_category_stats, save_category_stats

TINY_CONFIG = 'configs/xpaste/centernet2_r18-tiny_fpn_40i_synthetic-lvis.py'
# LVIS configs (the COCO config is covered by test_docs_and_coco_config.py).
XPASTE_CONFIGS = sorted(p.name for p in (Path(__file__).resolve().parents[1] / 'configs/xpaste')
                        .glob('centernet2_*.py') if '_coco' not in p.name)
register_all_modules(init_default_scope=True)  # configs use default_scope='mmdet'
RPN_LOSSES = {'loss_centernet_agn_pos', 'loss_centernet_agn_neg', 'loss_centernet_loc'}
ROI_LOSSES = {f'loss_{kind}_stage{s}' for kind in ('cls', 'box_reg') for s in range(3)} | {'loss_mask'}


def _retarget(obj, exact: dict, prefixes: dict):
    """Copy of a config value with file paths replaced (exact matches first, then path prefixes)."""
    if isinstance(obj, dict):
        return {k: _retarget(v, exact, prefixes) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_retarget(v, exact, prefixes) for v in obj)
    if isinstance(obj, str):
        if obj in exact:
            return exact[obj]
        for old, new in prefixes.items():
            if obj.startswith(old):
                return new + obj[len(old):]
    return obj


def _load_config(name: str, exact: dict, prefixes: dict, repo_root: Path) -> Config:
    cfg = Config.fromfile(str(repo_root / 'configs/xpaste' / name))
    return Config(_retarget(cfg.to_dict(), exact, prefixes))


@pytest.fixture(scope='module')
def tiny_cfg(synthetic_lvis, repo_root) -> Config:
    prefixes = {'data/synthetic_lvis/': f'{synthetic_lvis.root}/'}
    return _load_config(Path(TINY_CONFIG).name, {}, prefixes, repo_root)


def _batch(cfg: Config, indices) -> dict:
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return pseudo_collate([dataset[i] for i in indices])


def _build_model(cfg: Config):
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_tiny_model_losses_are_finite_and_reach_every_trainable_parameter(tiny_cfg):
    torch.manual_seed(0)
    model = _build_model(tiny_cfg)
    model.train()
    data = model.data_preprocessor(_batch(tiny_cfg, [0, 1]), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == RPN_LOSSES | ROI_LOSSES
    for name, value in losses.items():
        assert torch.isfinite(value) and value.item() >= 0, name
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []


def test_heads_run_in_fp32_under_autocast(tiny_cfg):
    """Mixed precision covers the backbone and neck only (X-Paste's split): the heads see fp32."""
    torch.manual_seed(0)
    model = _build_model(tiny_cfg)
    model.train()
    dtypes = {}
    model.neck.register_forward_hook(lambda m, a, out: dtypes.update(neck=out[0].dtype))
    model.rpn_head.conv_cls.register_forward_hook(lambda m, a, out: dtypes.update(rpn=out.dtype))
    model.roi_head.bbox_head[0].fc_cls.register_forward_hook(lambda m, a, out: dtypes.update(roi=out.dtype))
    data = model.data_preprocessor(_batch(tiny_cfg, [0]), training=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    assert dtypes == dict(neck=torch.bfloat16, rpn=torch.float32, roi=torch.float32)
    assert all(v.dtype == torch.float32 for v in losses.values())

def test_tiny_training_loss_falls_then_evaluates_with_tools_test(tiny_cfg, synthetic_lvis, repo_root,
                                                                 tmp_path):
    """20 AdamW steps on one batch. The losses with fixed targets (proposal head, masks) must fall; the
    cascade box losses are left out: they grow while better proposals add non-GT foreground RoIs."""
    torch.manual_seed(0)
    np.random.seed(0)
    model = _build_model(tiny_cfg)
    model.train()
    batch = _batch(tiny_cfg, [2, 3])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    fixed_target_losses = []
    for _ in range(20):
        losses = model(**model.data_preprocessor(batch, training=True), mode='loss')
        assert all(torch.isfinite(v) for v in losses.values())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        fixed_target_losses.append(sum(losses[k].item() for k in RPN_LOSSES | {'loss_mask'}))
    assert np.mean(fixed_target_losses[-5:]) < 0.6 * np.mean(fixed_target_losses[:5]), fixed_target_losses

    checkpoint = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)
    (tmp_path / 'data').mkdir()
    os.symlink(synthetic_lvis.root, tmp_path / 'data' / 'synthetic_lvis')
    env = dict(os.environ, PYTHONPATH=str(repo_root), OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, str(repo_root / 'tools/test.py'), str(repo_root / TINY_CONFIG), str(checkpoint),
         '--work-dir', str(tmp_path / 'eval'), '--out', str(tmp_path / 'preds.pkl')],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads(next((tmp_path / 'eval').rglob('*.json')).read_text())
    for key in ('lvis/bbox_AP', 'lvis/bbox_APr', 'lvis/segm_AP', 'lvis/segm_APf'):
        assert -1.0 <= metrics[key] <= 1.0
    predictions = pickle.loads((tmp_path / 'preds.pkl').read_bytes())
    assert len(predictions) == 8  # every val image
    for pred in predictions:
        instances = pred['pred_instances']
        assert len(instances['scores']) <= 300
        assert ((instances['scores'] > 0.02) & (instances['scores'] <= 1)).all()
        assert len(instances['masks']) == len(instances['scores'])
        assert (instances['labels'] < 8).all()


# --------------------------------------------------------------------------- every config builds
def _tiny_pool(root: Path, category_ids) -> Path:
    rng = np.random.default_rng(0)
    records = []
    for cat in category_ids:
        for k in range(2):
            alpha = np.zeros((40, 30), np.uint8)
            cv2.ellipse(alpha, (15, 20), (12, 17), 0, 0, 360, 255, -1)
            crop = np.dstack([np.full((40, 30, 3), rng.integers(0, 255, size=3), np.uint8), alpha])
            path = root / f'{cat}' / f'{k}.png'
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), crop)
            records.append(dict(category_id=cat, path=str(path), width=30, height=40))
    return PoolIndex.from_records(records, root).save(root / 'pool_index.npz')


@pytest.fixture(scope='module')
def real_config_paths(synthetic_lvis, tmp_path_factory):
    """Path replacements that point the LVIS/X-Paste configs at synthetic data, a tiny pool and stats."""
    work = tmp_path_factory.mktemp('cn2_configs')
    stats = save_category_stats(compute_category_stats(synthetic_lvis.train_ann),
                                work / 'category_stats.json')
    pool = _tiny_pool(work / 'pool', [1, 2, 3])
    exact = {'data/lvis_v1/metadata/category_stats.json': str(stats),
             'data/xpaste_pool/pool/pool_index.npz': str(pool),
             'data/xpaste_pool_synthetic/category_stats.json': str(stats),
             'data/xpaste_pool_synthetic/pool/pool_index.npz': str(pool)}
    prefixes = {'data/lvis_v1/': f'{synthetic_lvis.root}/', 'data/synthetic_lvis/': f'{synthetic_lvis.root}/'}
    return exact, prefixes


_built_models: dict[str, torch.nn.Module] = {}


@pytest.mark.parametrize('name', XPASTE_CONFIGS)
def test_config_builds_model_datasets_and_evaluator(name, real_config_paths, repo_root):
    cfg = _load_config(name, *real_config_paths, repo_root)
    key = repr(cfg.model)
    if key not in _built_models:  # configs share three distinct models; build each once
        _built_models[key] = MODELS.build(cfg.model)
    model = _built_models[key]
    assert type(model).__name__ == 'CenterNet2'
    assert len(model.roi_head.bbox_head) == 3
    assert not isinstance(model.roi_head.mask_head, torch.nn.ModuleList)  # one mask head

    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    sample = train_set[0]
    assert sample['inputs'].shape[0] == 3
    gt = sample['data_samples'].gt_instances
    assert len(gt.bboxes) == len(gt.labels) == len(gt.masks)
    if 'xpaste' in name:
        assert 'is_pasted' in gt and len(gt.is_pasted) == len(gt.labels)
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    val_sample = val_set[0]
    if 'synthetic' not in name:  # detectron2's test resize: shortest edge 800, longest <= 1333
        assert min(val_sample['data_samples'].img_shape) == 800
    METRICS.build(cfg.val_evaluator)


def _lvis_sized_stats(path: Path, num_classes: int = 1203) -> Path:
    path.write_text(json.dumps([{'id': i + 1, 'image_count': 1 + i % 50} for i in range(num_classes)]))
    return path


def test_full_r50_model_trains_a_step_and_predicts(tmp_path, repo_root):
    """The real R50 LVIS model (1203 classes, federated loss over 50 classes) on one small image."""
    stats = _lvis_sized_stats(tmp_path / 'cat_info.json')
    cfg = _load_config('centernet2_r50-in21k_fpn_8xb8-90k_lvis-v1.py',
                       {'data/lvis_v1/metadata/category_stats.json': str(stats)}, {}, repo_root)
    cfg.model.backbone.init_cfg = None
    cfg.model.train_cfg.rpn_proposal.max_per_img = 64  # fewer RoIs: the full-size heads are slow on CPU
    cfg.model.train_cfg.rcnn[0].sampler.num = 64
    cfg.model.test_cfg.rpn.max_per_img = 32
    cfg.model.test_cfg.rcnn.max_per_img = 20
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)  # PyTorch default initialisation (init_weights is slow here)
    size = 128
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                         scale_factor=(1.0, 1.0)))
    masks = np.zeros((2, size, size), np.uint8)
    masks[0, 10:60, 20:90] = 1
    masks[1, 70:120, 30:80] = 1
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[20., 10., 90., 60.], [30., 70., 80., 120.]]),
                                       labels=torch.tensor([5, 1100]), masks=BitmapMasks(masks, size, size))
    data = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8)],
                                        data_samples=[sample]), training=True)
    model.train()
    losses = model(**data, mode='loss')
    assert set(losses) == RPN_LOSSES | ROI_LOSSES and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.conv1.weight.grad is not None  # no frozen stages
    frozen_norms = [p for n, p in model.backbone.named_parameters() if 'bn' in n or 'downsample.1' in n]
    assert frozen_norms and not any(p.requires_grad for p in frozen_norms)
    model.eval()
    image = torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=False)
        result = model(**data, mode='predict')[0]
    assert 0 < len(result.pred_instances) <= 20
    assert result.pred_instances.masks.shape[1:] == (size, size)

