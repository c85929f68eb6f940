# Detic/X-Paste CenterNet2 baseline schedule (Base-C2_L_R5021k_640b64_4x): 90k iterations at total batch 64,
# AdamW lr 2e-4, weight decay 1e-4 on every parameter (no paramwise_cfg), gradient clipping by value 1.0
# (per element, on unscaled gradients), AMP, linear warm-up over 10k iterations from factor 1e-4, then a
# cosine over the whole run (iteration 0 as origin) to 0. Evaluation once at the end. Checkpoints every
# 10k iterations (default_runtime.py).
max_iters = 90000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4),
    clip_grad=dict(type='value', clip_value=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0, end=10000),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0.0, by_epoch=False, begin=0, end=max_iters),
]
# lr is for a total batch of 64; `tools/train.py --auto-scale-lr` rescales it linearly to the actual batch.
auto_scale_lr = dict(enable=False, base_batch_size=64)
