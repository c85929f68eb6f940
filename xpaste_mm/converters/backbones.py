"""Pretrained backbone converters into MMDetection's layout (keys prefixed with ``backbone.``).

* ImageNet-21k MIIL ResNet-50 (timm key names: ``conv1``, ``bn1``, ``layer{1..4}.{i}.*``, ``fc``) ->
  mmdet ``ResNet``; names are identical, the classifier ``fc`` is dropped.
* Swin-L 22k-384 (official Swin-Transformer layout: ``patch_embed.proj``, ``layers.{s}.blocks.{j}``,
  ``layers.{s}.downsample``) -> mmdet ``SwinTransformer`` through mmdet's own ``swin_converter``
  (renames plus the PatchMerging column reorder); the classifier ``head`` and the final ``norm`` of the
  classification model are dropped (detection uses per-stage ``norm{i}`` layers, trained from scratch).

Configs load the written files with
``init_cfg=dict(type='Pretrained', checkpoint=FILE, prefix='backbone.')`` (ResNet) or
``init_cfg=dict(type='Pretrained', checkpoint=FILE)`` (Swin; mmdet strips ``backbone.`` itself).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch

from .common import ConversionReport, check_against_target, strip_prefix, to_tensor_dict

#: mmdet ``ResNet`` settings of the X-Paste R50 backbone (all BN frozen, no frozen stages).
RESNET50_CFG = dict(type='ResNet', depth=50, num_stages=4, out_indices=(1, 2, 3), frozen_stages=-1,
                    norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, style='pytorch')
#: mmdet ``SwinTransformer`` settings of the X-Paste Swin-L (22k, 384 px) backbone.
SWIN_L_CFG = dict(type='SwinTransformer', pretrain_img_size=384, embed_dims=192, depths=(2, 2, 18, 2),
                  num_heads=(6, 12, 24, 48), window_size=12, mlp_ratio=4, qkv_bias=True,
                  drop_path_rate=0.3, patch_norm=True, out_indices=(1, 2, 3), use_abs_pos_embed=False)


def unwrap_state_dict(checkpoint: Mapping) -> tuple[OrderedDict, str]:
    """The weight mapping of a classification checkpoint (``state_dict``/``model``/bare)."""
    for key in ('state_dict', 'model', 'module'):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return to_tensor_dict(checkpoint[key]), key
    return to_tensor_dict(checkpoint), '<top level>'


def _read_weights(checkpoint: Mapping) -> tuple[OrderedDict, ConversionReport]:
    """The checkpoint's weights without a ``module.`` prefix, and a report noting where they were."""
    report = ConversionReport()
    weights, where = unwrap_state_dict(checkpoint)
    weights, stripped = strip_prefix(weights)
    report.notes.append(f'weights read from {where}' + (', "module." stripped' if stripped else ''))
    return weights, report


def build_backbone_state(cfg: dict) -> dict[str, torch.Tensor]:
    """``backbone.``-prefixed state dict of a freshly built mmdet backbone (shapes for checking)."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(cfg)
    return {f'backbone.{k}': v for k, v in model.state_dict().items()}


def convert_miil_resnet50(checkpoint: Mapping, target: Mapping[str, torch.Tensor]
                          ) -> tuple[OrderedDict, ConversionReport]:
    """Map a timm-layout ResNet-50 checkpoint onto ``target`` (an mmdet ResNet state dict)."""
    weights, report = _read_weights(checkpoint)
    converted = OrderedDict()
    for key, value in weights.items():
        if key.startswith(('fc.', 'head.fc.')):
            report.dropped[key] = 'ImageNet classifier (unused by the detector)'
        elif key.endswith('num_batches_tracked'):
            report.dropped[key] = 'BN step counter (BN is frozen)'
        else:
            converted[f'backbone.{key}'] = value
            report.mapped[key] = f'backbone.{key}'
    check_against_target(converted, target, report)
    return converted, report


def convert_official_swin(checkpoint: Mapping, target: Mapping[str, torch.Tensor]
                          ) -> tuple[OrderedDict, ConversionReport]:
    """Map an official Swin-Transformer checkpoint onto ``target`` (an mmdet Swin state dict)."""
    from mmdet.models.backbones.swin import swin_converter

    weights, report = _read_weights(checkpoint)
    kept = OrderedDict()
    for key, value in weights.items():
        if key.startswith('head.'):
            report.dropped[key] = 'ImageNet classifier (unused by the detector)'
        elif key.startswith('norm.'):
            report.dropped[key] = 'final norm of the classifier (detection uses per-stage norm{i})'
        elif key.endswith('attn_mask'):
            report.dropped[key] = 'shifted-window mask (recomputed at run time)'
        else:
            kept[key] = value
    converted = OrderedDict()
    for (source_key, _), (target_key, value) in zip(kept.items(), swin_converter(kept).items()):
        converted[target_key] = value
        report.mapped[source_key] = target_key
    check_against_target(converted, target, report)
    stage_norms = [k for k in report.missing if k.startswith('backbone.norm')]
    if stage_norms:
        report.missing = [k for k in report.missing if k not in stage_norms]
        report.notes.append(f'{len(stage_norms)} per-stage output-norm tensors start from their default '
                            'initialisation (they are not part of a classification checkpoint)')
    return converted, report
