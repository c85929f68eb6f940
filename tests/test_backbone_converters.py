"""Backbone converters: MIIL/timm ResNet-50 and official Swin -> mmdet, with refusal on bad input."""
import pickle
from collections import OrderedDict

import pytest
import torch

from xpaste_mm.converters import (
    RESNET50_CFG,
    SWIN_L_CFG,
    ConversionError,
    build_backbone_state,
    convert_miil_resnet50,
    convert_official_swin,
    finalize,
    load_source_checkpoint,
)

TINY_SWIN = dict(SWIN_L_CFG, embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                 window_size=7, pretrain_img_size=224, drop_path_rate=0.0)


def _build(cfg):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(cfg)
    model.eval()  # mmdet backbones' train() returns None, so no chaining
    return model


def test_timm_resnet50_converts_to_identical_outputs(tmp_path):
    timm = pytest.importorskip('timm')
    source = timm.create_model('resnet50', pretrained=False).eval()
    with torch.no_grad():  # non-trivial BN statistics
        for module in source.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    torch.save({'state_dict': source.state_dict()}, tmp_path / 'miil.pth')
    converted, report = convert_miil_resnet50(load_source_checkpoint(tmp_path / 'miil.pth'),
                                              build_backbone_state(RESNET50_CFG))
    assert report.ok, report.summary()
    assert 'fc.weight' in report.dropped and 'fc.weight' not in report.mapped
    out = finalize(converted, report, tmp_path / 'r50_mmdet.pth', meta={})
    target = _build(dict(RESNET50_CFG, init_cfg=dict(type='Pretrained', checkpoint=str(out),
                                                     prefix='backbone.')))
    target.init_weights()
    target.eval()
    image = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        expected = source.forward_features(image)
        got = target(image)[-1]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def _official_swin_layout(mmdet_state):
    """Test helper: write an mmdet Swin state dict back in the official Swin-Transformer layout."""
    official = OrderedDict()
    for key, value in mmdet_state.items():
        key = key[len('backbone.'):]
        if key.startswith('norm'):
            continue  # per-stage norms do not exist in a classification checkpoint
        if 'downsample.reduction' in key:
            out_ch, in_ch = value.shape
            value = value.reshape(out_ch, in_ch // 4, 4).transpose(1, 2)[:, [0, 2, 1, 3], :]
            value = value.reshape(out_ch, in_ch)
        elif 'downsample.norm' in key:
            value = value.reshape(-1, 4).t()[[0, 2, 1, 3], :].reshape(-1)
        key = (key.replace('stages', 'layers', 1).replace('attn.w_msa.', 'attn.')
               .replace('ffn.layers.0.0.', 'mlp.fc1.').replace('ffn.layers.1.', 'mlp.fc2.')
               .replace('patch_embed.projection', 'patch_embed.proj'))
        official[key] = value.clone()
    official['norm.weight'] = torch.ones(256)
    official['head.weight'] = torch.zeros(1000, 256)
    official['layers.0.blocks.1.attn_mask'] = torch.zeros(4, 49, 49)
    return official


def test_official_swin_converts_with_patch_merging_reorder(tmp_path):
    reference = _build(TINY_SWIN)
    with torch.no_grad():
        for param in reference.parameters():
            param.normal_()
    target_state = {f'backbone.{k}': v for k, v in reference.state_dict().items()}
    torch.save({'model': _official_swin_layout(target_state)}, tmp_path / 'swin.pth')
    converted, report = convert_official_swin(load_source_checkpoint(tmp_path / 'swin.pth'),
                                              build_backbone_state(TINY_SWIN))
    assert report.ok, report.summary()
    assert {'head.weight', 'norm.weight', 'layers.0.blocks.1.attn_mask'} <= report.dropped.keys()
    for key, value in converted.items():
        torch.testing.assert_close(value, target_state[key], msg=key)
    assert any('per-stage output-norm' in note for note in report.notes)


def test_refuses_wrong_shape_and_missing_key(tmp_path):
    target = build_backbone_state(RESNET50_CFG)
    weights = {k[len('backbone.'):]: torch.zeros_like(v) for k, v in target.items()}
    weights['layer1.0.conv1.weight'] = torch.zeros(64, 64, 3, 3)
    del weights['layer4.2.bn3.running_var']
    converted, report = convert_miil_resnet50(weights, target)
    with pytest.raises(ConversionError) as info:
        finalize(converted, report, tmp_path / 'out.pth', meta={})
    assert 'backbone.layer1.0.conv1.weight' in str(info.value)
    assert 'backbone.layer4.2.bn3.running_var' in str(info.value)
    assert not (tmp_path / 'out.pth').exists()


def test_pickles_need_explicit_trust(tmp_path):
    with open(tmp_path / 'model.pkl', 'wb') as f:
        pickle.dump({'model': {'w': torch.ones(1).numpy()}}, f)
    with pytest.raises(ConversionError, match='--trust-pickle'):
        load_source_checkpoint(tmp_path / 'model.pkl')
    assert load_source_checkpoint(tmp_path / 'model.pkl', trust_pickle=True)['model']['w'][0] == 1
