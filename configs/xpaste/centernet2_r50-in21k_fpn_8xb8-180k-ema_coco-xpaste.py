# X-Paste on COCO 2017 (80 classes): CenterNet2 R50 (ImageNet-21k MIIL) at X-Paste's R50 schedule (180k
# iterations, total batch 64, AdamW lr 1e-4, EMA 0.999, 640 px LSJ), pasting 0..19 instances of a COCO pool
# per training image. X-Paste released no COCO config (X-Paste issue #6); the differences from the LVIS one:
# - 80 classes in the three cascade box heads and the mask head;
# - federated loss OFF: COCO is exhaustively annotated, so every classifier is trained on every RoI (plain
#   sigmoid cross-entropy over the foreground logits); no category image counts are needed;
# - no repeat-factor sampling; CocoMetric (bbox + segm) with at most 100 detections per image;
# - a COCO pool and COCO size statistics (the LVIS ones would give COCO labels LVIS categories' sizes);
#   this writes both under data/xpaste_pool_coco/ (pool/pool_index.npz and category_stats.json):
#     xpaste-pool run configs/pool_builder/xpaste_lvis_sd15.py --cfg-options work_dir=data/xpaste_pool_coco \
#         vocabulary.file=data/coco/annotations/instances_train2017.json \
#         stats.ann_file=data/coco/annotations/instances_train2017.json
# Pool category ids are COCO ids (1..90 with gaps); labels are their rank, as CocoDataset numbers them.
_base_ = [
    '../_base_/models/centernet2_r50_fpn.py',
    '../_base_/datasets/coco_instance_lsj-640.py',
    '../_base_/schedules/centernet2_adamw-cosine_180k-ema.py',
    '../_base_/default_runtime.py',
]
num_classes = 80
fed_loss_stats_file = None  # federated loss is off (see loss_cls)
pool_work_dir = 'data/xpaste_pool_coco/'
xpaste_pool_file = pool_work_dir + 'pool/pool_index.npz'
category_stats_file = pool_work_dir + 'category_stats.json'  # `xpaste-pool stats` on instances_train2017


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
        # use_fed_loss=True with stats_file=category_stats_file turns Detic's federated loss back on.
        loss_cls=dict(type='FederatedSigmoidCELoss', num_classes=num_classes, use_fed_loss=False),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0))


model = dict(
    roi_head=dict(
        bbox_head=[_cascade_bbox_head(w) for w in ((10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15))],
        mask_head=dict(num_classes=num_classes)),
    test_cfg=dict(rcnn=dict(max_per_img=100)))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=True),
    dict(type='RandomResize', scale=(640, 640), ratio_range=(0.1, 2.0), keep_ratio=True, backend='pillow'),
    dict(type='RandomCrop', crop_type='absolute', crop_size=(640, 640), allow_negative_crop=True,
         recompute_bbox=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), min_gt_mask_area=1, by_box=True, by_mask=True,
         keep_empty=False),
    dict(type='RandomFlip', prob=0.5),
    # The stats file lists every COCO category, so label i = i-th smallest COCO id, as in CocoDataset.
    dict(type='XPasteCopyPaste', pool_file=xpaste_pool_file, stats_file=category_stats_file,
         max_num_pasted=20, sample_mode='cas_random', blend_modes=('basic',)),
    dict(type='PackXPasteInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
default_hooks = dict(checkpoint=dict(interval=30000))
