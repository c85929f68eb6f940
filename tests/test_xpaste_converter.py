"""Official X-Paste (detectron2) checkpoint conversion: identical outputs, refusals naming the key."""
import re
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

from xpaste_mm.converters import ConversionError, finalize
from xpaste_mm.converters.xpaste_detectron2 import build_model_state, convert_xpaste_checkpoint

TINY = 'configs/xpaste/centernet2_r18-tiny_fpn_40i_synthetic-lvis.py'

# Test helper: our key -> detectron2 key (the inverse of the converter's table, written independently).
_TO_D2 = (
    (r'backbone\.(.*)', r'backbone.bottom_up.base.\1'),
    (r'neck\.lateral_convs\.(\d)\.conv\.(.*)', lambda m: f'backbone.fpn_lateral{int(m[1]) + 3}.{m[2]}'),
    (r'neck\.fpn_convs\.([012])\.conv\.(.*)', lambda m: f'backbone.fpn_output{int(m[1]) + 3}.{m[2]}'),
    (r'neck\.fpn_convs\.3\.conv\.(.*)', r'backbone.top_block.p6.\1'),
    (r'neck\.fpn_convs\.4\.conv\.(.*)', r'backbone.top_block.p7.\1'),
    (r'rpn_head\.reg_convs\.(\d)\.conv\.(.*)',
     lambda m: f'proposal_generator.centernet_head.bbox_tower.{3 * int(m[1])}.{m[2]}'),
    (r'rpn_head\.reg_convs\.(\d)\.gn\.(.*)',
     lambda m: f'proposal_generator.centernet_head.bbox_tower.{3 * int(m[1]) + 1}.{m[2]}'),
    (r'rpn_head\.conv_cls\.(.*)', r'proposal_generator.centernet_head.agn_hm.\1'),
    (r'rpn_head\.conv_reg\.(.*)', r'proposal_generator.centernet_head.bbox_pred.\1'),
    (r'rpn_head\.scales\.(\d)\.scale', r'proposal_generator.centernet_head.scales.\1.scale'),
    (r'roi_head\.bbox_head\.(\d)\.shared_fcs\.(\d)\.(.*)',
     lambda m: f'roi_heads.box_head.{m[1]}.fc{int(m[2]) + 1}.{m[3]}'),
    (r'roi_head\.bbox_head\.(\d)\.fc_cls\.(.*)', r'roi_heads.box_predictor.\1.cls_score.\2'),
    (r'roi_head\.bbox_head\.(\d)\.fc_reg\.(.*)', r'roi_heads.box_predictor.\1.bbox_pred.\2'),
    (r'roi_head\.mask_head\.convs\.(\d)\.conv\.(.*)',
     lambda m: f'roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.{m[2]}'),
    (r'roi_head\.mask_head\.upsample\.(.*)', r'roi_heads.mask_head.deconv.\1'),
    (r'roi_head\.mask_head\.conv_logits\.(.*)', r'roi_heads.mask_head.predictor.\1'),
)


def detectron2_layout(state, prefix=''):
    out = OrderedDict()
    for key, value in state.items():
        if key.endswith('num_batches_tracked'):
            continue
        for pattern, repl in _TO_D2:
            match = re.fullmatch(pattern, key)
            if match:
                new = repl(match) if callable(repl) else match.expand(repl)
                out[prefix + new] = value.reshape(1) if key.endswith('.scale') else value.clone()
                break
        else:
            raise AssertionError(f'test helper has no rule for {key}')
    for stage in range(3):
        out[f'{prefix}roi_heads.box_predictor.{stage}.freq_weight'] = torch.ones(8)
    out[f'{prefix}backbone.bottom_up.base.fc.weight'] = torch.zeros(10, 128)
    return out


def _build(repo_root, seed):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(repo_root / TINY).model)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def _predict(model, image):
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(img_shape=(128, 160), ori_shape=(128, 160), scale_factor=(1., 1.),
                                         pad_shape=(128, 160), batch_input_shape=(128, 160)))
    with torch.no_grad():
        return model.predict(image, [sample])[0].pred_instances


def test_converted_checkpoint_reproduces_the_ema_model(tmp_path, repo_root):
    ema, raw = _build(repo_root, 0), _build(repo_root, 1)
    checkpoint = dict(model=detectron2_layout(raw.state_dict()),
                      model_ema=detectron2_layout(ema.state_dict(), prefix='module.'),
                      iteration=180000)
    torch.save(checkpoint, tmp_path / 'xpaste_tiny.pth')
    proc = subprocess.run([sys.executable, str(repo_root / 'tools/model_converters/xpaste_to_mmdet.py'),
                           str(tmp_path / 'xpaste_tiny.pth'), str(tmp_path / 'converted.pth'),
                           '--config', str(repo_root / TINY)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'model_ema' in proc.stdout and 'federated-loss weights' in proc.stdout
    converted = _build(repo_root, 2)
    state = torch.load(tmp_path / 'converted.pth', weights_only=True)['state_dict']
    missing, unexpected = converted.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith('num_batches_tracked') for k in missing)
    image = torch.randn(1, 3, 128, 160)
    expected, got = _predict(ema, image), _predict(converted, image)
    assert len(expected) > 0
    torch.testing.assert_close(got.bboxes, expected.bboxes)
    torch.testing.assert_close(got.scores, expected.scores)
    assert torch.equal(got.masks, expected.masks)


def test_use_model_picks_raw_weights(repo_root):
    ema, raw = _build(repo_root, 0), _build(repo_root, 1)
    checkpoint = dict(model=detectron2_layout(raw.state_dict()),
                      model_ema=detectron2_layout(ema.state_dict()))
    converted, report = convert_xpaste_checkpoint(checkpoint, raw.state_dict(), use_ema=False)
    assert report.ok and 'weights read from "model"' in report.notes[0]
    key = 'rpn_head.conv_cls.weight'
    torch.testing.assert_close(converted[key], raw.state_dict()[key])


def test_refuses_wrong_shape_missing_key_and_zero_shot(tmp_path, repo_root):
    model = _build(repo_root, 0)
    weights = detectron2_layout(model.state_dict())
    weights['roi_heads.box_predictor.1.cls_score.weight'] = torch.zeros(1204, 64)  # LVIS head, 8-class model
    del weights['roi_heads.mask_head.deconv.bias']
    converted, report = convert_xpaste_checkpoint({'model': weights}, build_model_state(repo_root / TINY))
    with pytest.raises(ConversionError) as info:
        finalize(converted, report, tmp_path / 'out.pth', meta={})
    assert 'roi_head.bbox_head.1.fc_cls.weight: checkpoint (1204, 64) vs model (9, 64)' in str(info.value)
    assert 'roi_head.mask_head.upsample.bias' in str(info.value)
    assert not (tmp_path / 'out.pth').exists()
    weights['roi_heads.box_predictor.0.cls_score.linear.weight'] = torch.zeros(512, 64)
    with pytest.raises(ConversionError, match='zero-shot'):
        convert_xpaste_checkpoint({'model': weights}, model.state_dict())


def test_swin_backbone_keys_map_with_patch_merging_reorder(repo_root):
    from mmengine.config import Config
    cfg = Config.fromfile(repo_root / TINY)
    swin = dict(type='SwinTransformer', embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                window_size=7, pretrain_img_size=224, out_indices=(1, 2, 3), convert_weights=False,
                init_cfg=None)
    cfg.model.backbone = swin
    cfg.model.neck.in_channels = [64, 128, 256]
    from mmdet.registry import MODELS
    target = MODELS.build(cfg.model).state_dict()
    from test_backbone_converters import _official_swin_layout  # official Swin layout helper
    official = _official_swin_layout({k: v for k, v in target.items() if k.startswith('backbone.')})
    official = {k: v for k, v in official.items() if not k.startswith(('head.', 'norm.'))}
    for i in (1, 2, 3):
        for part in ('weight', 'bias'):
            official[f'norm{i}.{part}'] = target[f'backbone.norm{i}.{part}']
    rest = detectron2_layout({k: v for k, v in target.items() if not k.startswith('backbone.')})
    rest.pop('backbone.bottom_up.base.fc.weight')
    weights = {**{f'backbone.bottom_up.{k}': v for k, v in official.items()}, **rest}
    converted, report = convert_xpaste_checkpoint({'model': weights}, target)
    assert report.ok, report.summary()
    for key, value in converted.items():
        torch.testing.assert_close(value, target[key], msg=key)
