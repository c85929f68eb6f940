# Runtime and schedule of the tiny CPU test/demo configs: default_runtime.py plus 40 iterations of AdamW
# (lr 1e-3, gradient values clipped at 1), linear warm-up over 10 iterations then cosine to 0, evaluation at
# the end, a log line every 10 iterations, checkpoints every 20 (2 kept), a fixed seed.
_base_ = './default_runtime.py'
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
