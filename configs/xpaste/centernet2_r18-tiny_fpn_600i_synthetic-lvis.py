# The tiny CPU CenterNet2 on the synthetic LVIS data for 600 iterations: the equal-schedule baseline of
# centernet2_r18-tiny_fpn_600i_synthetic-lvis-xpaste.py (the offline demo's model).
_base_ = ['./centernet2_r18-tiny_fpn_40i_synthetic-lvis.py']

max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=60),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0, by_epoch=False, begin=0, end=max_iters),
]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters))
log_processor = dict(window_size=20)
