# Baseline: MMDetection's LVIS v1 Mask R-CNN recipe, inherited unchanged (R50-FPN, ImageNet-1k torchvision
# weights, repeat-factor sampling 1e-3, multi-scale training (1333, 640..800) + flip, SGD lr 0.02 at total
# batch 16 (8 GPUs x 2), 12 epochs, 300 detections per image; MMDetection reports 22.5 box / 21.7 mask AP).
# Only the metric changes: FastLVISMetric gives the same AP as mmdet's LVISMetric (lvis-api), faster;
# custom_imports loads this project for it.
_base_ = 'mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py'
custom_imports = dict(imports=['xpaste_mm'], allow_failed_imports=False)
val_evaluator = dict(type='FastLVISMetric')
test_evaluator = val_evaluator
randomness = dict(seed=None)  # one per run of a multi-seed comparison: --cfg-options randomness.seed=N
