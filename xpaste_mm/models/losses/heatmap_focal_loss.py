"""Binary heatmap focal loss of CenterNet2's class-agnostic objectness heatmap."""
from __future__ import annotations

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class BinaryHeatmapFocalLoss(nn.Module):
    """CornerNet-style focal loss on a single-channel Gaussian heatmap.

    ``p = clamp(sigmoid(logit), clamp, 1 - clamp)``. Positive term: ``-log(p) (1 - p)^gamma`` summed over
    the positive locations (``pos_inds``; duplicates count once per occurrence). Negative term:
    ``-log(1 - p) p^gamma (1 - target)^beta`` summed over all locations, leaving out locations with
    ``p >= ignore_high_fp`` (likely unannotated objects; ``<= 0`` disables). The terms are weighted by
    ``alpha * pos_weight`` and ``(1 - alpha) * neg_weight`` and divided by ``avg_factor``. The two terms
    are returned separately, as in CenterNet2's logs.

    Args:
        alpha (float): balance of the positive term (``1 - alpha`` weighs the negative one).
            Defaults to 0.25.
        beta (float): exponent of ``(1 - target)`` that lowers the penalty near object centres.
            Defaults to 4.0.
        gamma (float): focusing exponent on ``(1 - p)`` / ``p``. Defaults to 2.0.
        sigmoid_clamp (float): ``p`` is clamped to ``[clamp, 1 - clamp]``. Defaults to 1e-4.
        ignore_high_fp (float): negatives with ``p`` at or above this are left out; ``<= 0`` keeps
            all. Defaults to 0.85.
        pos_weight (float): extra weight of the positive term. Defaults to 0.5.
        neg_weight (float): extra weight of the negative term. Defaults to 0.5.
    """

    def __init__(self, alpha: float = 0.25, beta: float = 4.0, gamma: float = 2.0,
                 sigmoid_clamp: float = 1e-4, ignore_high_fp: float = 0.85, pos_weight: float = 0.5,
                 neg_weight: float = 0.5) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        if not 0 < sigmoid_clamp < 0.5:
            raise ValueError(f'sigmoid_clamp must be in (0, 0.5), got {sigmoid_clamp}')
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.sigmoid_clamp = sigmoid_clamp
        self.ignore_high_fp = ignore_high_fp
        self.pos_weight = pos_weight
        self.neg_weight = neg_weight

    def forward(self, logits: Tensor, targets: Tensor, pos_inds: Tensor,
                avg_factor: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
        """``logits``/``targets``: (M,) flattened heatmap logits and Gaussian targets in [0, 1];
        ``pos_inds``: (P,) long indices into them. Returns ``(pos_loss, neg_loss)``; computed in fp32."""
        if logits.shape != targets.shape:
            raise ValueError(f'logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ')
        prob = logits.float().sigmoid().clamp(self.sigmoid_clamp, 1 - self.sigmoid_clamp)
        neg_weights = (1 - targets.float()).pow(self.beta)
        pos_prob = prob[pos_inds]
        pos_loss = -(pos_prob.log() * (1 - pos_prob).pow(self.gamma)).sum()
        neg_loss = torch.log(1 - prob) * prob.pow(self.gamma) * neg_weights
        if self.ignore_high_fp > 0:
            neg_loss = neg_loss * (prob < self.ignore_high_fp).float()
        neg_loss = -neg_loss.sum()
        pos_scale = self.alpha * self.pos_weight / avg_factor
        neg_scale = (1 - self.alpha) * self.neg_weight / avg_factor
        return pos_loss * pos_scale, neg_loss * neg_scale
