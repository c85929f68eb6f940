# LVIS v1 instance segmentation as trained by X-Paste / Detic CenterNet2 (R50: 640 px large scale jitter,
# pipelines in lsj-640_instance_pipelines.py). data_root holds annotations/lvis_v1_{train,val}.json and the
# COCO 2017 images (train2017/, val2017/). Train: repeat-factor sampling (threshold 1e-3) via
# ClassBalancedDataset.
_base_ = './lsj-640_instance_pipelines.py'
dataset_type = 'LVISV1Dataset'
data_root = 'data/lvis_v1/'

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
            pipeline=_base_.train_pipeline,
            backend_args=_base_.backend_args)))
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
        pipeline=_base_.test_pipeline,
        backend_args=_base_.backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='FastLVISMetric',  # type='LVISMetric' switches back to mmdet's lvis-api metric
    ann_file=data_root + 'annotations/lvis_v1_val.json',
    metric=['bbox', 'segm'],
    backend_args=_base_.backend_args)
test_evaluator = val_evaluator
