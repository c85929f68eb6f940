"""tools/image_demo.py draws predictions of a tiny model on a synthetic image."""
import os
import subprocess
import sys

import cv2
import numpy as np
import torch

CONFIG = 'configs/xpaste/mask-rcnn_r18-tiny_fpn_40i_synthetic-lvis.py'


def _checkpoint_with_confident_heads(repo_root, path):
    """A tiny random model whose heads score everything high, so something is drawn."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(repo_root / CONFIG).model)
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.bias[:-1] = 5.0  # foreground logits
        model.rpn_head.rpn_cls.bias.fill_(5.0)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)


def test_image_demo_writes_drawn_image(tmp_path, synthetic_lvis, repo_root):
    image = sorted((synthetic_lvis.root / 'val2017').iterdir())[0]
    _checkpoint_with_confident_heads(repo_root, tmp_path / 'tiny.pth')
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    proc = subprocess.run(
        [sys.executable, str(repo_root / 'tools/image_demo.py'), str(image), str(repo_root / CONFIG),
         '--weights', str(tmp_path / 'tiny.pth'), '--device', 'cpu', '--pred-score-thr', '0.05',
         '--out-dir', str(tmp_path / 'out')], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    drawn = cv2.imread(str(tmp_path / 'out' / 'vis' / image.name))
    original = cv2.imread(str(image))
    assert drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original.astype(int)).mean() > 1.0  # something was drawn
    assert (tmp_path / 'out' / 'preds' / f'{image.stem}.json').is_file()
