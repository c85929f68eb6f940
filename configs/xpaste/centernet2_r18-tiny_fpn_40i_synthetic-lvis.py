# CenterNet2 (X-Paste variant) shrunk for CPU tests and demos: random-init ResNet-18 with 16 base channels,
# 32-channel FPN/heads, few proposals and RoIs, on the synthetic LVIS data (8 categories, small images).
#   python tools/dataset_converters/make_synthetic_lvis.py data/synthetic_lvis
#   python tools/train.py configs/xpaste/centernet2_r18-tiny_fpn_40i_synthetic-lvis.py
_base_ = [
    '../_base_/models/centernet2_r50_fpn.py',
    '../_base_/datasets/synthetic_lvis_instance.py',
    '../_base_/tiny_cpu_runtime.py',
]
num_classes = 8
# The synthetic annotation file carries per-category image counts (LVIS format) for the federated loss.
category_stats_file = 'data/synthetic_lvis/annotations/lvis_v1_train.json'
model = dict(
    backbone=dict(depth=18, base_channels=16, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  init_cfg=None),
    neck=dict(in_channels=[32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32, norm_cfg=dict(type='GN', num_groups=8, requires_grad=True)),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=[dict(head, in_channels=32, fc_out_channels=64, num_classes=num_classes,
                        loss_cls=dict(head.loss_cls, num_classes=num_classes, stats_file=category_stats_file))
                   for head in _base_.model.roi_head.bbox_head],
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(num_convs=2, in_channels=32, conv_out_channels=32, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=128),
        rcnn=[dict(stage, sampler=dict(stage.sampler, num=64)) if stage.sampler.type == 'RandomSampler' else stage
              for stage in _base_.model.train_cfg.rcnn]),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))
