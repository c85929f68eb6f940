# COCO 2017 instance segmentation with the CenterNet2 / X-Paste R50 training recipe (640 px).
# data_root holds annotations/instances_{train,val}2017.json and the images under train2017/, val2017/.
# Train: EfficientDet-style large scale jitter as lvis_v1_instance_rfs-lsj-640.py (resize to fit s*T x s*T,
# s ~ U(0.1, 2.0), pillow bilinear, random T x T crop without padding, drop empty instances, horizontal flip)
# but no repeat-factor sampling: COCO is not long-tailed (with LVIS's threshold 1e-3 every COCO category
# has a repeat factor of 1, so the wrapper would only cost time). Test: shortest edge 800, longest <= 1333,
# batch 1. CocoMetric (bbox + segm); the model keeps at most 100 detections per image (COCO's protocol).
# Labels: CocoDataset numbers the categories in the order of the annotation file's "categories" list
# (COCO: sorted ids 1..90 with gaps -> labels 0..79). Images are loaded BGR; the preprocessor makes RGB.
dataset_type = 'CocoDataset'
data_root = 'data/coco/'
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

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
