# The CenterNet2 / X-Paste instance-segmentation pipelines, shared by the LVIS and COCO dataset bases.
# Train: EfficientDet-style large scale jitter: resize the image to fit s*T x s*T, s ~ U(0.1, 2.0) (pillow
# bilinear), random T x T crop (no padding), drop empty instances (images stay), horizontal flip; T = 640
# (R50). Test: shortest edge 800, longest <= 1333 (detectron2 rounding), batch 1, fp32. Images are loaded
# BGR; the model's preprocessor converts to RGB. X-Paste configs insert XPasteCopyPaste after the flip
# (xpaste_mm.utils.xpaste_config.add_xpaste).
backend_args = None
train_size = 640

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=True),
    dict(type='RandomResize', scale=(train_size, train_size), ratio_range=(0.1, 2.0), keep_ratio=True,
         backend='pillow'),
    dict(type='RandomCrop', crop_type='absolute', crop_size=(train_size, train_size), allow_negative_crop=True,
         recompute_bbox=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), min_gt_mask_area=1, by_box=True, by_mask=True,
         keep_empty=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='ResizeShortestEdge', scale=800, max_size=1333, backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
