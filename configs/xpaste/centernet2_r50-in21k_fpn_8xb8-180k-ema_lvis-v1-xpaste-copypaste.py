# X-Paste + classic copy-paste (Xpaste_copypaste_R50.yaml, USE_COPY_METHOD 'both'): pool pasting first, then
# Simple Copy-Paste of 0..N objects from another training image (cached recent images of the worker).
_base_ = './centernet2_r50-in21k_fpn_8xb8-180k-ema_lvis-v1-xpaste.py'

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=True),
    dict(type='RandomResize', scale=(640, 640), ratio_range=(0.1, 2.0), keep_ratio=True, backend='pillow'),
    dict(type='RandomCrop', crop_type='absolute', crop_size=(640, 640), allow_negative_crop=True,
         recompute_bbox=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), min_gt_mask_area=1, by_box=True, by_mask=True,
         keep_empty=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='XPasteCopyPaste', pool_file={{_base_.xpaste_pool_file}}, stats_file={{_base_.category_stats_file}},
         max_num_pasted=20, sample_mode='cas_random', blend_modes=('basic',)),
    dict(type='CachedCopyPaste', max_cached_images=20, max_num_pasted=100, bbox_occluded_thr=10,
         mask_occluded_thr=300),
    dict(type='PackXPasteInputs'),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
