# X-Paste's schedule (Xpaste_R50 / Xpaste_swinL): 180k iterations, AdamW lr 1e-4, EMA of the weights
# (decay 0.999, i.e. mmengine momentum 0.001) used for evaluation; otherwise as the 90k baseline schedule.
# X-Paste saved a checkpoint every 30k iterations: configs set default_hooks.checkpoint.interval.
_base_ = './centernet2_adamw-cosine_90k.py'
max_iters = 180000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0, end=10000),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0.0, by_epoch=False, begin=0, end=max_iters),
]
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, update_buffers=False,
         priority=49),
]
