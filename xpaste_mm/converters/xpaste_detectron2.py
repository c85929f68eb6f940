"""Official X-Paste / Detic CenterNet2 checkpoints (detectron2) -> our ``CenterNet2`` state dict.

Every source key is mapped by the explicit table below (port map section 5) or dropped with a reason;
anything else is reported as unexpected. The converted tensors are shape-checked against a model built
from the target config, and :func:`~xpaste_mm.converters.common.finalize` refuses to write a file with
a missing weight, a shape mismatch or an unexpected key.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping

import torch

from .common import (
    ConversionError,
    ConversionReport,
    InputError,
    check_against_target,
    strip_prefix,
    to_tensor_dict,
)

BACKBONE = 'backbone.bottom_up.'
PROPOSAL = 'proposal_generator.centernet_head.'


def _fpn(match: re.Match) -> str:
    level = int(match.group(2)) - 3  # P3..P5 -> 0..2
    kind = 'lateral_convs' if match.group(1) == 'lateral' else 'fpn_convs'
    return f'neck.{kind}.{level}.conv.{match.group(3)}'


def _tower(match: re.Match) -> str:
    index = int(match.group(1))
    conv, part = divmod(index, 3)  # Conv, GroupNorm, ReLU repeated
    if part == 2:
        raise ConversionError(f'bbox_tower.{index} is a ReLU and has no weights')
    return f'rpn_head.reg_convs.{conv}.{"conv" if part == 0 else "gn"}.{match.group(2)}'


#: (source pattern, target template or function). Patterns are matched against the whole key.
KEY_TABLE: tuple[tuple[str, str | Callable[[re.Match], str]], ...] = (
    (r'backbone\.fpn_(lateral|output)(\d)\.(weight|bias)', _fpn),
    (r'backbone\.top_block\.p6\.(weight|bias)', r'neck.fpn_convs.3.conv.\1'),
    (r'backbone\.top_block\.p7\.(weight|bias)', r'neck.fpn_convs.4.conv.\1'),
    (r'proposal_generator\.centernet_head\.bbox_tower\.(\d+)\.(weight|bias)', _tower),
    (r'proposal_generator\.centernet_head\.agn_hm\.(weight|bias)', r'rpn_head.conv_cls.\1'),
    (r'proposal_generator\.centernet_head\.bbox_pred\.(weight|bias)', r'rpn_head.conv_reg.\1'),
    (r'proposal_generator\.centernet_head\.scales\.(\d)\.scale', r'rpn_head.scales.\1.scale'),
    (r'roi_heads\.box_head\.(\d)\.fc([12])\.(weight|bias)',
     lambda m: f'roi_head.bbox_head.{m.group(1)}.shared_fcs.{int(m.group(2)) - 1}.{m.group(3)}'),
    (r'roi_heads\.box_predictor\.(\d)\.cls_score\.(weight|bias)', r'roi_head.bbox_head.\1.fc_cls.\2'),
    (r'roi_heads\.box_predictor\.(\d)\.bbox_pred\.(weight|bias)', r'roi_head.bbox_head.\1.fc_reg.\2'),
    (r'roi_heads\.mask_head\.mask_fcn(\d)\.(weight|bias)',
     lambda m: f'roi_head.mask_head.convs.{int(m.group(1)) - 1}.conv.{m.group(2)}'),
    (r'roi_heads\.mask_head\.deconv\.(weight|bias)', r'roi_head.mask_head.upsample.\1'),
    (r'roi_heads\.mask_head\.predictor\.(weight|bias)', r'roi_head.mask_head.conv_logits.\1'),
)

#: (source pattern, reason) of keys dropped on purpose.
DROPPED: tuple[tuple[str, str], ...] = (
    (r'roi_heads\.box_predictor\.\d\.freq_weight', 'federated-loss weights (recomputed from the stats file)'),
    (r'backbone\.bottom_up\.base\.fc\.(weight|bias)', 'ImageNet classifier of the backbone (unused)'),
    (r'.*num_batches_tracked', 'BN step counter (BN is frozen)'),
    (r'backbone\.bottom_up\.layers\.\d\.blocks\.\d+\.attn_mask', 'shifted-window mask (recomputed)'),
    (r'pixel_(mean|std)', 'input normalisation (in the data preprocessor)'),
)
ZERO_SHOT_MARKERS = ('cls_score.linear.', 'cls_score.zs_weight')


def pick_weights(checkpoint: Mapping, use_ema: bool = True) -> tuple[OrderedDict, str]:
    """The model weights of a detectron2 checkpoint: ``model_ema`` when present and ``use_ema``
    (official evaluation uses it), else ``model``; a bare weight dict is accepted too."""
    if use_ema and isinstance(checkpoint.get('model_ema'), Mapping) and checkpoint['model_ema']:
        return to_tensor_dict(checkpoint['model_ema']), 'model_ema'
    if isinstance(checkpoint.get('model'), Mapping):
        return to_tensor_dict(checkpoint['model']), 'model'
    if use_ema and 'model_ema' in checkpoint:
        raise ConversionError('checkpoint has an empty "model_ema" and no "model"')
    return to_tensor_dict(checkpoint), '<top level>'


def _convert_backbone(weights: Mapping[str, torch.Tensor], report: ConversionReport) -> OrderedDict:
    """Backbone keys: timm ResNet (``base.*``, same names as mmdet) or official Swin layout."""
    from mmdet.models.backbones.swin import swin_converter

    converted = OrderedDict()
    swin = OrderedDict()
    for key, value in weights.items():
        local = key[len(BACKBONE):]
        if local.startswith('base.'):
            converted[f'backbone.{local[len("base."):]}'] = value
            report.mapped[key] = f'backbone.{local[len("base."):]}'
        else:
            swin[local] = value
    if swin:
        for (local, _), (target, value) in zip(swin.items(), swin_converter(swin).items()):
            converted[target] = value
            report.mapped[BACKBONE + local] = target
    return converted


def convert_xpaste_checkpoint(checkpoint: Mapping, target: Mapping[str, torch.Tensor],
                              use_ema: bool = True) -> tuple[OrderedDict, ConversionReport]:
    """Map a detectron2 X-Paste/Detic CenterNet2 checkpoint onto ``target`` (our model's state)."""
    report = ConversionReport()
    weights, where = pick_weights(checkpoint, use_ema)
    weights, stripped = strip_prefix(weights)
    report.notes.append(f'weights read from "{where}"' + (', "module." prefix stripped' if stripped else ''))
    if any(marker in key for key in weights for marker in ZERO_SHOT_MARKERS):
        raise ConversionError('this is a zero-shot Detic checkpoint (cls_score.linear / zs_weight, CLIP '
                              'classifier); X-Paste models use a plain linear classifier (cls_score.weight)')
    backbone = OrderedDict()
    converted = OrderedDict()
    for key, value in weights.items():
        reason = next((why for pattern, why in DROPPED if re.fullmatch(pattern, key)), None)
        if reason is not None:
            report.dropped[key] = reason
            continue
        if key.startswith(BACKBONE):
            backbone[key] = value
            continue
        for pattern, template in KEY_TABLE:
            match = re.fullmatch(pattern, key)
            if match:
                new_key = template(match) if callable(template) else match.expand(template)
                if new_key.endswith('.scale'):
                    value = value.reshape(())  # detectron2 [1] -> mmcv Scale's 0-d parameter
                converted[new_key] = value
                report.mapped[key] = new_key
                break
        else:
            report.unexpected.append(key)
    converted.update(_convert_backbone(backbone, report))
    check_against_target(converted, target, report)
    return converted, report


def build_model_state(config: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict of our model built from ``config`` (random weights; for shape checks).

    A config that does not exist, does not parse or whose model does not build raises
    :class:`~xpaste_mm.converters.common.InputError` naming the config.
    """
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import xpaste_mm  # noqa: F401  (registers the model)
    if not os.path.isfile(config):
        raise InputError(f'config {config} does not exist')
    init_default_scope('mmdet')
    try:
        cfg = Config.fromfile(config)
        model_cfg = cfg.model
    except Exception as exc:  # a config is Python code: it can fail in any way
        raise InputError(f'config {config} cannot be read ({type(exc).__name__}: {exc})') from exc
    try:
        model_cfg.backbone.init_cfg = None
        return MODELS.build(model_cfg).state_dict()
    except Exception as exc:
        raise InputError(f'config {config}: its model does not build ({type(exc).__name__}: {exc})') from exc
