# X-Paste on MMDetection's LVIS v1 Mask R-CNN R50-FPN recipe: its equal-schedule baseline
# mask-rcnn_r50_fpn_sample1e-3-ms_8xb2-1x_lvis-v1.py plus pasting 0..19 pool instances per training image
# after the multi-scale resize and flip (X-Paste's R50 settings: 'cas_random', 'basic' blending).
_base_ = './mask-rcnn_r50_fpn_sample1e-3-ms_8xb2-1x_lvis-v1.py'
from xpaste_mm.utils.xpaste_config import add_xpaste  # noqa: E402

xpaste_pool_file = 'data/xpaste_pool/pool/pool_index.npz'  # written by pool_builder (work dir data/xpaste_pool)
category_stats_file = 'data/lvis_v1/metadata/category_stats.json'  # `xpaste-pool stats` on lvis_v1_train.json
train_dataloader, custom_hooks = add_xpaste(_base_, xpaste_pool_file, category_stats_file)
