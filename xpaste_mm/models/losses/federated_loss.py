"""Sigmoid cross-entropy with the federated loss of Detic / X-Paste (LVIS is federated: an image is only
exhaustively labelled for some categories, so each step trains only a sampled subset of classifiers)."""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from ...categories import in_label_order, load_image_counts


def load_federated_weights(stats_file: str | os.PathLike, num_classes: int, power: float = 0.5) -> Tensor:
    """Per-label sampling weights ``image_count ** power`` (float32, shape (num_classes,)).

    Label ``i`` is the ``i``-th category id in ascending order (:mod:`xpaste_mm.categories`), the label
    order of mmdet's LVIS/COCO datasets. The file is anything
    :func:`~xpaste_mm.categories.load_image_counts` reads.
    """
    counts = load_image_counts(stats_file)
    if len(counts) != num_classes:
        raise ValueError(f'{stats_file}: has image counts for {len(counts)} categories, but the classifier '
                         f'has num_classes={num_classes}; use the statistics of the training annotations')
    ordered = torch.tensor(in_label_order(counts), dtype=torch.float64)
    return ordered.clamp(min=0).pow(power).float()


def sample_federated_classes(labels: Tensor, num_classes: int, num_sample_cats: int,
                             weights: Tensor) -> Tensor:
    """Classes whose classifiers are trained this step.

    ``labels`` (N,) are RoI labels in ``[0, num_classes]`` (``num_classes`` = background). Returns the
    unique labels present (background included when present) plus classes drawn without replacement with
    probability proportional to ``weights`` (never background, never a present class) until
    ``num_sample_cats`` classes are selected or no class with a non-zero weight is left.
    """
    appeared = torch.unique(labels)
    if len(appeared) >= num_sample_cats:
        return appeared
    prob = torch.zeros(num_classes + 1, dtype=torch.float, device=labels.device)
    prob[:num_classes] = weights.to(labels.device)
    prob[appeared] = 0
    num_more = min(num_sample_cats - len(appeared), int((prob > 0).sum()))
    if num_more == 0:
        return appeared
    more = torch.multinomial(prob, num_more, replacement=False)
    return torch.cat([appeared, more])


@MODELS.register_module()
class FederatedSigmoidCELoss(nn.Module):
    """Binary cross-entropy over the ``C`` foreground logits of a ``(N, C + 1)`` score (background is the
    last column and is never trained), masked to the federated class subset, summed and divided by N.

    ``stats_file`` gives the per-category image counts (our ``category_stats.json``, X-Paste's
    ``lvis_v1_train_cat_info.json`` or an LVIS annotation file). It is read at the first loss call, so a
    model builds for inference without the training statistics. ``use_fed_loss=False`` trains every
    classifier on every RoI.

    Args:
        num_classes (int): foreground classes ``C``; the stats file must list exactly ``C`` categories.
        stats_file (str, optional): per-category image counts (see above); required with
            ``use_fed_loss``.
        use_fed_loss (bool): train only the federated subset of classifiers. Defaults to True.
        num_sample_cats (int): size of the subset: the classes present plus classes drawn with
            probability ``image_count ** freq_weight_power``. Defaults to 50.
        freq_weight_power (float): exponent of the image counts. Defaults to 0.5.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, num_classes: int, stats_file: str | None = None, use_fed_loss: bool = True,
                 num_sample_cats: int = 50, freq_weight_power: float = 0.5, loss_weight: float = 1.0) -> None:
        super().__init__()
        if use_fed_loss and not stats_file:
            raise ValueError('FederatedSigmoidCELoss: use_fed_loss=True needs stats_file (category image '
                             'counts), e.g. category_stats.json or lvis_v1_train_cat_info.json')
        self.num_classes = num_classes
        self.stats_file = stats_file
        self.use_fed_loss = use_fed_loss
        self.num_sample_cats = num_sample_cats
        self.freq_weight_power = freq_weight_power
        self.loss_weight = loss_weight
        self._class_weights: Tensor | None = None

    @property
    def class_weights(self) -> Tensor:
        """Sampling weights ``image_count ** freq_weight_power`` per label (loaded once)."""
        if self._class_weights is None:
            self._class_weights = load_federated_weights(self.stats_file, self.num_classes,
                                                         self.freq_weight_power)
        return self._class_weights

    def forward(self, cls_score: Tensor, labels: Tensor) -> Tensor:
        """``cls_score`` (N, C + 1) logits, ``labels`` (N,) in ``[0, C]``; returns a scalar (fp32)."""
        num_rois, num_columns = cls_score.shape
        if num_columns != self.num_classes + 1:
            raise ValueError(f'cls_score has {num_columns} columns, expected num_classes + 1 = '
                             f'{self.num_classes + 1}')
        if num_rois == 0:
            return cls_score.sum() * 0
        target = F.one_hot(labels, self.num_classes + 1)[:, :self.num_classes].float()
        losses = F.binary_cross_entropy_with_logits(cls_score[:, :self.num_classes].float(), target,
                                                    reduction='none')
        if self.use_fed_loss:
            selected = sample_federated_classes(labels, self.num_classes, self.num_sample_cats,
                                                self.class_weights)
            class_mask = torch.zeros(self.num_classes + 1, device=cls_score.device)
            class_mask[selected] = 1
            losses = losses * class_mask[:self.num_classes]
        return self.loss_weight * losses.sum() / num_rois
