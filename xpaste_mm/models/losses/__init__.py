"""Losses of the CenterNet2 (X-Paste/Detic variant) detector."""
from .federated_loss import FederatedSigmoidCELoss, load_federated_weights, sample_federated_classes
from .heatmap_focal_loss import BinaryHeatmapFocalLoss
from .ltrb_giou_loss import LTRBGIoULoss, ltrb_giou

__all__ = [
    'BinaryHeatmapFocalLoss', 'FederatedSigmoidCELoss', 'LTRBGIoULoss', 'load_federated_weights',
    'ltrb_giou', 'sample_federated_classes',
]
