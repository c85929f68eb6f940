# COCO 2017 instance segmentation with the CenterNet2 / X-Paste R50 training recipe (640 px), i.e.
# lvis_v1_instance_rfs-lsj-640.py on COCO: data_root holds annotations/instances_{train,val}2017.json and
# the images under train2017/, val2017/. No repeat-factor sampling: COCO is not long-tailed (with LVIS's
# threshold 1e-3 every COCO category has a repeat factor of 1, so the wrapper would only cost time).
# CocoMetric (bbox + segm); the model keeps at most 100 detections per image (COCO's protocol).
# Labels: CocoDataset numbers the categories in the order of the annotation file's "categories" list
# (COCO: sorted ids 1..90 with gaps -> labels 0..79).
_base_ = './lvis_v1_instance_rfs-lsj-640.py'
dataset_type = 'CocoDataset'
data_root = 'data/coco/'

train_dataloader = dict(dataset=dict(
    _delete_=True,
    type=dataset_type,
    data_root=data_root,
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline=_base_.train_pipeline,
    backend_args=_base_.backend_args))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root,
                                   ann_file='annotations/instances_val2017.json',
                                   data_prefix=dict(img='val2017/')))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json',
                     metric=['bbox', 'segm'], format_only=False, backend_args=_base_.backend_args)
test_evaluator = val_evaluator
