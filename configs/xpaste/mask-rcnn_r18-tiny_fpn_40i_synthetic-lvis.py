# First vertical slice: stock Mask R-CNN with a tiny random-init ResNet-18 (16 base channels) on the
# synthetic LVIS data, a few CPU iterations, LVIS evaluation (bbox + segm, 300 detections per image).
#   python tools/dataset_converters/make_synthetic_lvis.py data/synthetic_lvis
#   python tools/train.py configs/xpaste/mask-rcnn_r18-tiny_fpn_40i_synthetic-lvis.py
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/synthetic_lvis_instance.py',
    '../_base_/tiny_cpu_runtime.py',
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

# Gradient norm clipping and no cosine decay (the first Mask R-CNN slice's schedule).
optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=10.0, norm_type=2))
param_scheduler = [_base_.param_scheduler[0]]
