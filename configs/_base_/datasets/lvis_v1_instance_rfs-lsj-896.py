# As lvis_v1_instance_rfs-lsj-640.py with the Swin-L training size T = 896 (test resize unchanged).
_base_ = './lvis_v1_instance_rfs-lsj-640.py'
train_size = 896
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
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
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
