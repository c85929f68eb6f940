# X-Paste (Xpaste_swinL.yaml): the 180k EMA baseline plus pasting 0..19 pool instances per training image
# (category-balanced 'cas_random', hard 'basic' blending) after resize/crop/flip.
# Build the pool with `xpaste-pool` and the category statistics (size prior + federated-loss weights) with
# xpaste_mm.datasets.compute_category_stats on lvis_v1_train.json.
_base_ = './centernet2_swin-l-in22k-384_fpn_8xb2-180k-ema_lvis-v1.py'
xpaste_pool_file = 'data/xpaste_pool/pool/pool_index.npz'  # written by pool_builder (work dir data/xpaste_pool)
category_stats_file = 'data/lvis_v1/metadata/category_stats.json'

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=True),
    dict(type='RandomResize', scale=(896, 896), ratio_range=(0.1, 2.0), keep_ratio=True, backend='pillow'),
    dict(type='RandomCrop', crop_type='absolute', crop_size=(896, 896), allow_negative_crop=True,
         recompute_bbox=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), min_gt_mask_area=1, by_box=True, by_mask=True,
         keep_empty=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='XPasteCopyPaste', pool_file=xpaste_pool_file, stats_file=category_stats_file,
         max_num_pasted=20, sample_mode='cas_random', blend_modes=('basic',)),
    dict(type='PackXPasteInputs'),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
