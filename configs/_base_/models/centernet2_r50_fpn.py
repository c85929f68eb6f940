# CenterNet2 as configured by X-Paste (Detic variant), LVIS v1 (1203 classes), ResNet-50 + FPN P3-P7.
# Every value follows X-Paste's Base-C2_L_R5021k_640b64_4x.yaml (see docs of xpaste_mm.models).
# Federated-loss weights (image_count ** 0.5) come from `category_stats_file`, read at the first training
# step: our category_stats.json (`xpaste-pool stats`; X-Paste configs read its size prior from the same
# file), X-Paste's lvis_v1_train_cat_info.json or the LVIS train annotations.
num_classes = 1203
category_stats_file = 'data/lvis_v1/metadata/category_stats.json'


def _cascade_bbox_head(reg_weights):
    return dict(
        type='CenterNet2BBoxHead',
        in_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=num_classes,
        reg_class_agnostic=True,
        reg_loss_norm='foreground',
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=[1 / w for w in reg_weights]),
        loss_cls=dict(
            type='FederatedSigmoidCELoss',
            num_classes=num_classes,
            stats_file=category_stats_file,
            num_sample_cats=50,
            freq_weight_power=0.5),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0))


def _stage_train_cfg(iou, sampler):
    return dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                      match_low_quality=False, ignore_iof_thr=-1),
        sampler=sampler,
        mask_size=28,
        pos_weight=-1,
        debug=False)


model = dict(
    type='CenterNet2',
    fp32_heads=True,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    # ImageNet-21k (MIIL) ResNet-50, all BatchNorms frozen, every conv trainable. The weights file is
    # written by tools/model_converters/miil_resnet50_to_mmdet.py from resnet50_miil_21k.pth.
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/resnet50_miil_21k_mmdet.pth',
                      prefix='backbone.')),
    # P3-P5 from C3-C5, P6 = conv(P5 output), P7 = conv(relu(P6)).
    neck=dict(
        type='FPN',
        in_channels=[512, 1024, 2048],
        out_channels=256,
        start_level=0,
        add_extra_convs='on_output',
        relu_before_extra_convs=True,
        num_outs=5),
    rpn_head=dict(
        type='CenterNetProposalHead',
        in_channels=256,
        feat_channels=256,
        num_convs=4,
        strides=(8, 16, 32, 64, 128),
        sizes_of_interest=((0, 80), (64, 160), (128, 320), (256, 640), (512, 10000000)),
        min_overlap=0.8,
        min_radius=4,
        prior_prob=0.01,
        bbox_bias_init=8.0,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        loss_heatmap=dict(
            type='BinaryHeatmapFocalLoss', alpha=0.25, beta=4.0, gamma=2.0, sigmoid_clamp=1e-4,
            ignore_high_fp=0.85, pos_weight=0.5, neg_weight=0.5),
        loss_bbox=dict(type='LTRBGIoULoss', loss_weight=1.0)),
    roi_head=dict(
        type='CenterNet2RoIHead',
        num_stages=3,
        stage_loss_weights=(1.0, 1.0, 1.0),
        mult_proposal_score=True,
        ignore_pasted_in_box_loss=False,
        ignore_pasted_in_mask_loss=False,
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0, aligned=True),
            out_channels=256,
            featmap_strides=[8, 16, 32],
            finest_scale=112),
        bbox_head=[_cascade_bbox_head(w) for w in ((10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15))],
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0, aligned=True),
            out_channels=256,
            featmap_strides=[8, 16, 32],
            finest_scale=112),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            num_classes=num_classes,
            class_agnostic=True,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(),
        rpn_proposal=dict(score_thr=1e-4, nms_pre=4000, nms=dict(type='nms', iou_threshold=0.9),
                          max_per_img=2000),
        rcnn=[
            _stage_train_cfg(0.6, dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                                       add_gt_as_proposals=True)),
            _stage_train_cfg(0.7, dict(type='PseudoSampler')),
            _stage_train_cfg(0.8, dict(type='PseudoSampler')),
        ]),
    test_cfg=dict(
        rpn=dict(score_thr=1e-4, nms_pre=1000, nms=dict(type='nms', iou_threshold=0.9), max_per_img=256),
        rcnn=dict(score_thr=0.02, nms=dict(type='nms', iou_threshold=0.5), max_per_img=300,
                  mask_thr_binary=0.5)))
