"""Box head of one CenterNet2 cascade stage: 2 shared FCs, C + 1 sigmoid logits, class-agnostic deltas."""
from __future__ import annotations

from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from torch import Tensor

REG_LOSS_NORMS = ('foreground', 'all_rois')


@MODELS.register_module()
class CenterNet2BBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` with the losses of X-Paste's Detic heads.

    - ``fc_cls`` gives ``num_classes + 1`` logits (background last). They are *sigmoid* scores: the loss
      (``FederatedSigmoidCELoss`` by default) trains only the foreground columns, and the RoI head turns
      them into probabilities with a sigmoid (never a softmax).
    - Box regression: L1 on the encoded deltas of foreground RoIs (``loss_bbox``, default ``L1Loss``),
      normalised by ``reg_loss_norm``: ``'foreground'`` = the number of regressed elements
      (4 x foreground RoIs with a non-zero weight; X-Paste) or ``'all_rois'`` = the number of RoIs
      of the stage (Detic / detectron2).

    Layers: ``shared_fcs.{0,1}``, ``fc_cls`` (C + 1 outputs), ``fc_reg`` (4 outputs when
    ``reg_class_agnostic``). Initialisation: FCs as detectron2's ``c2_xavier_fill``, ``fc_cls`` ~ N(0, 0.01)
    with bias ``-log(99)`` (prior 0.01), ``fc_reg`` ~ N(0, 0.001).

    Args:
        num_classes (int): foreground classes ``C``.
        reg_loss_norm (str): ``'foreground'`` (X-Paste) or ``'all_rois'`` (Detic), see above.
            Defaults to ``'foreground'``.
        reg_class_agnostic (bool): one box per RoI instead of one per class. Defaults to True.
        loss_cls (dict): classification loss config (required), e.g.
            ``dict(type='FederatedSigmoidCELoss', num_classes=C, stats_file=...)``.
        loss_bbox (dict, optional): box regression loss config. Defaults to ``dict(type='L1Loss')``.
        init_cfg (dict or list[dict], optional): initialisation; defaults to the scheme above.
        **kwargs: the other arguments of mmdet's ``Shared2FCBBoxHead`` (``in_channels``,
            ``fc_out_channels``, ``roi_feat_size``, ``bbox_coder``, ...).
    """

    def __init__(self,
                 num_classes: int,
                 reg_loss_norm: str = 'foreground',
                 reg_class_agnostic: bool = True,
                 loss_cls: dict | None = None,
                 loss_bbox: dict | None = None,
                 init_cfg: dict | list | None = None,
                 **kwargs) -> None:
        if reg_loss_norm not in REG_LOSS_NORMS:
            raise ValueError(f'reg_loss_norm must be one of {REG_LOSS_NORMS}, got {reg_loss_norm!r}')
        if loss_cls is None:
            raise ValueError('CenterNet2BBoxHead needs loss_cls, e.g. dict(type="FederatedSigmoidCELoss", '
                             'num_classes=..., stats_file=...)')
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', a=1, mode='fan_in', nonlinearity='leaky_relu', distribution='uniform',
                     override=dict(name='shared_fcs')),
                dict(type='Normal', std=0.01, bias_prob=0.01, override=dict(name='fc_cls')),
                dict(type='Normal', std=0.001, override=dict(name='fc_reg')),
            ]
        super().__init__(num_classes=num_classes, reg_class_agnostic=reg_class_agnostic, loss_cls=loss_cls,
                         loss_bbox=loss_bbox or dict(type='L1Loss', loss_weight=1.0), init_cfg=init_cfg,
                         **kwargs)
        self.reg_loss_norm = reg_loss_norm

    def loss(self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor, labels: Tensor, label_weights: Tensor,
             bbox_targets: Tensor, bbox_weights: Tensor, reduction_override: str | None = None) -> dict:
        """``loss_cls`` and ``loss_bbox`` of one stage over all its RoIs (``label_weights`` are not used:
        every RoI counts once, as in detectron2). ``bbox_weights`` rows of 0 exclude a foreground RoI from
        the box loss (and from the 'foreground' normaliser)."""
        losses = dict(loss_cls=self.loss_cls(cls_score, labels))
        foreground = (labels >= 0) & (labels < self.num_classes)
        box_dim = self.bbox_coder.encode_size
        if self.reg_class_agnostic:
            pred = bbox_pred.view(bbox_pred.size(0), box_dim)[foreground]
        else:
            pred = bbox_pred.view(bbox_pred.size(0), -1, box_dim)[foreground, labels[foreground]]
        weights = bbox_weights[foreground]
        norm = weights.sum() if self.reg_loss_norm == 'foreground' else float(labels.numel())
        losses['loss_bbox'] = self.loss_bbox(pred.float(), bbox_targets[foreground].float(), weights,
                                             avg_factor=max(float(norm), 1.0))
        return losses
