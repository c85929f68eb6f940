# A pool from your own (or retrieved) images with no model download except the CLIP scorer:
# <root>/<category name or folder name>/*.jpg|png -> weight-free OpenCV segmenters -> CLIP -> pool.
#
#   xpaste-pool run configs/pool_builder/own_images_weight_free.py \
#       --cfg-options ingest.root=/data/my_photos vocabulary.file=/data/my_coco/train.json
_base_ = ['./xpaste_lvis_sd15.py']

work_dir = 'data/own_pool'
generate = None
ingest = dict(_delete_=True, root='data/own_photos', source='own', copy=False, skip_unknown_folders=False)
segment = dict(segmenters=['grabcut', 'border_color'], batch_size=16)
