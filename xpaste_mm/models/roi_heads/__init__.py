"""RoI heads of the CenterNet2 (X-Paste/Detic variant) detector."""
from .centernet2_bbox_head import CenterNet2BBoxHead
from .centernet2_roi_head import CenterNet2RoIHead

__all__ = ['CenterNet2BBoxHead', 'CenterNet2RoIHead']
