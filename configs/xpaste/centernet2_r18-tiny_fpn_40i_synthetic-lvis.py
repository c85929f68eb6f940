# CenterNet2 (X-Paste variant) shrunk for CPU tests and demos: random-init ResNet-18 with 16 base channels,
# 32-channel FPN/heads, few proposals and RoIs, on the synthetic LVIS data (8 categories, small images).
#   python tools/dataset_converters/make_synthetic_lvis.py data/synthetic_lvis
#   python tools/train.py configs/xpaste/centernet2_r18-tiny_fpn_40i_synthetic-lvis.py
_base_ = [
    '../_base_/models/centernet2_r50_fpn.py',
    '../_base_/datasets/synthetic_lvis_instance.py',
    '../_base_/default_runtime.py',
]
num_classes = 8
# The synthetic annotation file carries per-category image counts (LVIS format).
fed_loss_stats_file = 'data/synthetic_lvis/annotations/lvis_v1_train.json'


def _tiny_bbox_head(reg_weights):
    return dict(
        type='CenterNet2BBoxHead',
        in_channels=32,
        fc_out_channels=64,
        roi_feat_size=7,
        num_classes=num_classes,
        reg_class_agnostic=True,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=[1 / w for w in reg_weights]),
        loss_cls=dict(type='FederatedSigmoidCELoss', num_classes=num_classes, stats_file=fed_loss_stats_file,
                      num_sample_cats=50, freq_weight_power=0.5),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0))


model = dict(
    backbone=dict(depth=18, base_channels=16, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  init_cfg=None),
    neck=dict(in_channels=[32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32, norm_cfg=dict(type='GN', num_groups=8, requires_grad=True)),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=[_tiny_bbox_head(w) for w in ((10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15))],
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(num_convs=2, in_channels=32, conv_out_channels=32, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=128),
        rcnn=[
            dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                               match_low_quality=False, ignore_iof_thr=-1),
                 sampler=sampler, mask_size=28, pos_weight=-1, debug=False)
            for iou, sampler in (
                (0.6, dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1,
                           add_gt_as_proposals=True)),
                (0.7, dict(type='PseudoSampler')),
                (0.8, dict(type='PseudoSampler')))
        ]),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

max_iters = 40
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(type='value', clip_value=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0, by_epoch=False, begin=0, end=max_iters),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=20, by_epoch=False, max_keep_ckpts=2))
log_processor = dict(window_size=10)
auto_scale_lr = dict(enable=False, base_batch_size=2)
randomness = dict(seed=0)
