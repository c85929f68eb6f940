# First vertical slice: stock Mask R-CNN with a tiny random-init ResNet-18 (16 base channels) on the
# synthetic LVIS data, a few CPU iterations, LVIS evaluation (bbox + segm, 300 detections per image).
#   python tools/dataset_converters/make_synthetic_lvis.py data/synthetic_lvis
#   python tools/train.py configs/xpaste/mask-rcnn_r18-tiny_fpn_40i_synthetic-lvis.py
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/synthetic_lvis_instance.py',
    '../_base_/default_runtime.py',
]
num_classes = 8
model = dict(
    backbone=dict(depth=18, base_channels=16, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(num_convs=2, in_channels=32, conv_out_channels=32, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200)))

max_iters = 40
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=20, by_epoch=False, max_keep_ckpts=2))
log_processor = dict(window_size=10)
auto_scale_lr = dict(enable=False, base_batch_size=2)
randomness = dict(seed=0)
