# Baseline: mask-rcnn_r50_fpn_sample1e-3-ms_8xb2-1x_lvis-v1.py with MMDetection's 2x schedule (24 epochs, lr
# steps after epochs 16 and 22): the equal-schedule twin of the 2x X-Paste recipes.
_base_ = './mask-rcnn_r50_fpn_sample1e-3-ms_8xb2-1x_lvis-v1.py'
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs, milestones=[16, 22])]
