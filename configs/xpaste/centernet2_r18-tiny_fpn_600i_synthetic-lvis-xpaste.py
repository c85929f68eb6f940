# The tiny CPU CenterNet2 trained with X-Paste on the synthetic LVIS data: what `tools/run_pipeline.py`
# (the offline end-to-end demo) trains. Paths are relative to the demo's output folder, which holds
#   data/synthetic_lvis/                      synthetic LVIS v1 train/val
#   data/xpaste_pool_synthetic/pool/          the pool built by pool_builder from synthetic object images
#   data/xpaste_pool_synthetic/category_stats.json   size prior + federated-loss counts (pool_builder stats)
_base_ = ['./centernet2_r18-tiny_fpn_40i_synthetic-lvis.py']

pool_work_dir = 'data/xpaste_pool_synthetic/'
xpaste_pool_file = pool_work_dir + 'pool/pool_index.npz'
category_stats_file = pool_work_dir + 'category_stats.json'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=(256, 256), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # X-Paste: 0..9 pool instances per image, class-balanced, sized by the category's size prior.
    dict(type='XPasteCopyPaste', pool_file=xpaste_pool_file, stats_file=category_stats_file,
         max_num_pasted=10, sample_mode='cas_random', blend_modes=('basic',)),
    dict(type='PackXPasteInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=60),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0, by_epoch=False, begin=0, end=max_iters),
]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters))
log_processor = dict(window_size=20)
