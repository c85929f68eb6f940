# LVIS v1 instance segmentation as trained by X-Paste / Detic CenterNet2 (R50: 640 px).
# data_root holds annotations/lvis_v1_{train,val}.json and the COCO 2017 images (train2017/, val2017/).
# Train: repeat-factor sampling (threshold 1e-3) via ClassBalancedDataset; EfficientDet-style large scale
# jitter: resize the image to fit s*T x s*T, s ~ U(0.1, 2.0) (pillow bilinear), random T x T crop (no
# padding), drop empty instances (images stay), horizontal flip. Test: shortest edge 800, longest <= 1333
# (detectron2 rounding), batch 1, fp32. Images are loaded BGR; the model's preprocessor converts to RGB.
dataset_type = 'LVISV1Dataset'
data_root = 'data/lvis_v1/'
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
        type='ClassBalancedDataset',
        oversample_thr=1e-3,
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='annotations/lvis_v1_train.json',
            data_prefix=dict(img=''),
            filter_cfg=dict(filter_empty_gt=True, min_size=0),
            pipeline=train_pipeline,
            backend_args=backend_args)))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/lvis_v1_val.json',
        data_prefix=dict(img=''),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='FastLVISMetric',  # type='LVISMetric' switches back to mmdet's lvis-api metric
    ann_file=data_root + 'annotations/lvis_v1_val.json',
    metric=['bbox', 'segm'],
    backend_args=backend_args)
test_evaluator = val_evaluator
