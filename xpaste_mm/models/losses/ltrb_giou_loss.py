"""Generalised IoU loss on (left, top, right, bottom) distances, as used by CenterNet2."""
from __future__ import annotations

from mmdet.registry import MODELS
from torch import Tensor, nn


def ltrb_giou(pred: Tensor, target: Tensor) -> Tensor:
    """GIoU of boxes given as distances (N, 4) = (left, top, right, bottom) from a shared point.

    The IoU uses +1 smoothing, ``(inter + 1) / (union + 1)``, so it is only scale-free for distances in
    stride units (not pixels), the units the CenterNet2 head works in.
    """
    pred_area = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    target_area = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    inter_w = pred[:, 0].minimum(target[:, 0]) + pred[:, 2].minimum(target[:, 2])
    inter_h = pred[:, 1].minimum(target[:, 1]) + pred[:, 3].minimum(target[:, 3])
    enclose_w = pred[:, 0].maximum(target[:, 0]) + pred[:, 2].maximum(target[:, 2])
    enclose_h = pred[:, 1].maximum(target[:, 1]) + pred[:, 3].maximum(target[:, 3])
    inter = inter_w * inter_h
    union = pred_area + target_area - inter
    enclose = enclose_w * enclose_h
    iou = (inter + 1.0) / (union + 1.0)
    return iou - (enclose - union) / enclose


@MODELS.register_module()
class LTRBGIoULoss(nn.Module):
    """``loss_weight * sum(weight * (1 - GIoU)) / avg_factor`` over ltrb distance pairs (N, 4).

    Targets must be strictly positive (the location lies inside its box) so the enclosing area is never
    zero; CenterNet2 only regresses such locations.

    Args:
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor = 1.0) -> Tensor:
        if pred.shape != target.shape or pred.dim() != 2 or pred.shape[-1] != 4:
            raise ValueError(f'pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be (N, 4)')
        losses = 1 - ltrb_giou(pred.float(), target.float())
        if weight is not None:
            losses = losses * weight
        return self.loss_weight * losses.sum() / avg_factor
