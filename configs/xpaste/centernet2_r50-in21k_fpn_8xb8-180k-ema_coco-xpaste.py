# X-Paste on COCO 2017: its equal-schedule baseline centernet2_r50-in21k_fpn_8xb8-180k-ema_coco.py plus
# pasting 0..19 instances of a COCO pool per training image. A COCO pool and COCO size statistics (the LVIS
# ones would give COCO labels LVIS categories' sizes); this writes both under data/xpaste_pool_coco/:
#     xpaste-pool run configs/pool_builder/xpaste_lvis_sd15.py --cfg-options work_dir=data/xpaste_pool_coco \
#         vocabulary.file=data/coco/annotations/instances_train2017.json \
#         stats.ann_file=data/coco/annotations/instances_train2017.json
# The stats file lists every COCO category, so label i = i-th smallest COCO id, as in CocoDataset.
_base_ = './centernet2_r50-in21k_fpn_8xb8-180k-ema_coco.py'
from xpaste_mm.utils.xpaste_config import add_xpaste  # noqa: E402

pool_work_dir = 'data/xpaste_pool_coco/'
xpaste_pool_file = pool_work_dir + 'pool/pool_index.npz'
category_stats_file = pool_work_dir + 'category_stats.json'  # `xpaste-pool stats` on instances_train2017
train_dataloader, custom_hooks = add_xpaste(_base_, xpaste_pool_file, category_stats_file)
