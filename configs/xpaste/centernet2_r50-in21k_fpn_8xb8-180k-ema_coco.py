# CenterNet2 R50 (ImageNet-21k MIIL) on COCO 2017 (80 classes) at X-Paste's R50 schedule (180k iterations,
# total batch 64, AdamW lr 1e-4, EMA 0.999, 640 px LSJ): the equal-schedule baseline of
# centernet2_r50-in21k_fpn_8xb8-180k-ema_coco-xpaste.py. X-Paste released no COCO config (X-Paste issue #6);
# the differences from the LVIS recipe:
# - 80 classes in the three cascade box heads and the mask head;
# - federated loss OFF: COCO is exhaustively annotated, so every classifier is trained on every RoI (plain
#   sigmoid cross-entropy over the foreground logits); no category image counts are needed;
# - no repeat-factor sampling; CocoMetric (bbox + segm) with at most 100 detections per image.
_base_ = [
    '../_base_/models/centernet2_r50_fpn.py',
    '../_base_/datasets/coco_instance_lsj-640.py',
    '../_base_/schedules/centernet2_adamw-cosine_180k-ema.py',
    '../_base_/default_runtime.py',
]
num_classes = 80
# use_fed_loss=True with stats_file=category_stats_file turns Detic's federated loss back on.
model = dict(
    roi_head=dict(
        bbox_head=[dict(head, num_classes=num_classes,
                        loss_cls=dict(type='FederatedSigmoidCELoss', num_classes=num_classes, use_fed_loss=False))
                   for head in _base_.model.roi_head.bbox_head],
        mask_head=dict(num_classes=num_classes)),
    test_cfg=dict(rcnn=dict(max_per_img=100)))
default_hooks = dict(checkpoint=dict(interval=30000))
