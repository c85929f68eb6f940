# X-Paste + classic copy-paste (X-Paste's 'both' mode) on the Mask R-CNN R50-FPN 2x LVIS v1 recipe; its
# equal-schedule baseline is mask-rcnn_r50_fpn_sample1e-3-ms_8xb2-2x_lvis-v1.py.
_base_ = './mask-rcnn_r50_fpn_sample1e-3-ms_8xb2-2x_lvis-v1-xpaste.py'
from xpaste_mm.utils.xpaste_config import add_copy_paste  # noqa: E402

train_dataloader = add_copy_paste(_base_, max_cached_images=20, max_num_pasted=100)
