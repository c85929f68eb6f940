"""CenterNet2 two-stage detector: backbone + FPN (P3-P7), CenterNet proposals, cascade RoI head."""
from __future__ import annotations

import contextlib

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from torch import Tensor


@MODELS.register_module()
class CenterNet2(TwoStageDetector):
    """``TwoStageDetector`` whose proposal head is class-agnostic (so the GT labels are not copied and
    zeroed for it) and whose heads run in fp32.

    With ``fp32_heads=True`` (default) the backbone and neck follow the surrounding autocast (AMP), while
    the proposal head, RoI head and all losses run with autocast disabled on fp32 features, the precision
    split of X-Paste's training. Loss names: ``loss_centernet_*`` (proposal head) and the RoI head's.

    State-dict layout (for checkpoint converters): ``backbone.*`` (mmdet ResNet / SwinTransformer),
    ``neck.{lateral_convs,fpn_convs}.{i}.conv.*`` (fpn_convs 3/4 = P6/P7), ``rpn_head.reg_convs.{0-3}.
    {conv,gn}.*``, ``rpn_head.conv_cls.*`` (heatmap), ``rpn_head.conv_reg.*``, ``rpn_head.scales.{0-4}.scale``
    (0-d), ``roi_head.bbox_head.{0,1,2}.{shared_fcs.{0,1},fc_cls,fc_reg}.*`` and
    ``roi_head.mask_head.{convs.{i}.conv,upsample,conv_logits}.*``.

    Args:
        *args: the arguments of mmdet's ``TwoStageDetector`` (``backbone``, ``neck``, ``rpn_head``,
            ``roi_head``, ``train_cfg``, ``test_cfg``, ``data_preprocessor``, ``init_cfg``).
        fp32_heads (bool): run the heads and losses in fp32 under AMP. Defaults to True.
        **kwargs: keyword forms of ``*args``.
    """

    def __init__(self, *args, fp32_heads: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fp32_heads = fp32_heads

    def _head_inputs(self, x: tuple[Tensor, ...]):
        """Features for the heads and the precision context to run them in."""
        if not self.fp32_heads:
            return x, contextlib.nullcontext()
        return tuple(f.float() for f in x), torch.autocast(device_type=x[0].device.type, enabled=False)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        x, precision = self._head_inputs(self.extract_feat(batch_inputs))
        with precision:
            proposal_cfg = self.train_cfg.get('rpn_proposal', self.test_cfg.rpn)
            losses, rpn_results_list = self.rpn_head.loss_and_predict(x, batch_data_samples,
                                                                      proposal_cfg=proposal_cfg)
            losses.update(self.roi_head.loss(x, rpn_results_list, batch_data_samples))
        return losses

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        x, precision = self._head_inputs(self.extract_feat(batch_inputs))
        with precision:
            rpn_results_list = self.rpn_head.predict(x, batch_data_samples, rescale=False)
            results_list = self.roi_head.predict(x, rpn_results_list, batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> tuple:
        x, precision = self._head_inputs(self.extract_feat(batch_inputs))
        with precision:
            rpn_results_list = self.rpn_head.predict(x, batch_data_samples, rescale=False)
            return (self.roi_head.forward(x, rpn_results_list, batch_data_samples),)
