"""The X-Paste training/test configs pointed at the synthetic data, with random weights.

Full mode uses the real configs as they are (model, train pipeline with ``XPasteCopyPaste``, test
pipeline, optimizer wrapper, EMA hook); only the data paths, the pool, the statistics file and the
pretrained-weight files change. Smoke mode keeps the real dataset/pipeline/schedule parts at a tiny
image size and swaps in the tiny CPU model (R18, or a small Swin for the Swin-L check).
"""
from __future__ import annotations

import copy
from pathlib import Path

from mmengine.config import Config, ConfigDict

from .fixtures import CheckData

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / 'configs/xpaste'
R50_CONFIG = CONFIGS / 'centernet2_r50-in21k_fpn_8xb8-180k-ema_lvis-v1-xpaste.py'
SWINL_CONFIG = CONFIGS / 'centernet2_swin-l-in22k-384_fpn_8xb2-180k-ema_lvis-v1-xpaste.py'
TINY_CONFIG = CONFIGS / 'centernet2_r18-tiny_fpn_40i_synthetic-lvis.py'
SMOKE_TRAIN_SIZE = 128

#: A Swin-T-like backbone shrunk for CPU tests; its stages have the tiny FPN's input widths.
TINY_SWIN = dict(type='SwinTransformer', pretrain_img_size=SMOKE_TRAIN_SIZE, embed_dims=16,
                 depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=4, mlp_ratio=2,
                 out_indices=(1, 2, 3), drop_path_rate=0.0, convert_weights=False, init_cfg=None)


def quiet_mmengine_logs() -> None:
    """Make a WARNING-level logger mmengine's current one, so building a model does not print every
    parameter's initialisation (a training run writes that to its log file instead)."""
    from mmengine.logging import MMLogger

    name = 'xpaste_gpu_check'
    if not MMLogger.check_instance_created(name):
        MMLogger.get_instance(name, log_level='WARNING')


def load_detector_config(config: str | Path, data: CheckData, smoke: bool, swin: bool = False) -> Config:
    """``config`` with its data, pool and statistics pointed at ``data`` and no pretrained files."""
    cfg = Config.fromfile(str(config))
    if smoke:
        tiny = Config.fromfile(str(TINY_CONFIG))
        cfg.model = tiny.model
        if swin:
            cfg.model.backbone = ConfigDict(TINY_SWIN)
        for step in cfg.train_dataloader.dataset.dataset.pipeline:
            if step['type'] == 'RandomResize':
                step['scale'] = (SMOKE_TRAIN_SIZE, SMOKE_TRAIN_SIZE)
            elif step['type'] == 'RandomCrop':
                step['crop_size'] = (SMOKE_TRAIN_SIZE, SMOKE_TRAIN_SIZE)
        for step in cfg.test_dataloader.dataset.pipeline:
            if step['type'] == 'ResizeShortestEdge':
                step.update(scale=SMOKE_TRAIN_SIZE, max_size=2 * SMOKE_TRAIN_SIZE)
    cfg.model.backbone.init_cfg = None  # random weights: the figures do not depend on them
    for head in cfg.model.roi_head.bbox_head:
        head.loss_cls.stats_file = str(data.stats_file)
    metainfo = dict(classes=data.class_names)
    train_set = cfg.train_dataloader.dataset.dataset  # ClassBalancedDataset(LVISV1Dataset)
    train_set.update(data_root=str(data.root) + '/', metainfo=metainfo)
    for step in train_set.pipeline:
        if step['type'] == 'XPasteCopyPaste':
            step.update(pool_file=str(data.pool_file), stats_file=str(data.stats_file))
    cfg.test_dataloader.dataset.update(data_root=str(data.root) + '/', metainfo=metainfo)
    return cfg


def set_loader_workers(loader_cfg: ConfigDict, workers: int, batch_size: int | None = None) -> ConfigDict:
    """A copy of a dataloader config with ``workers`` processes (and ``batch_size`` if given)."""
    loader = copy.deepcopy(loader_cfg)
    loader.num_workers = workers
    loader.persistent_workers = workers > 0
    if batch_size:
        loader.batch_size = batch_size
    return loader
