# CenterNet2 (X-Paste) with a Swin-L backbone (ImageNet-22k, 384 px, window 12, drop path 0.3);
# everything else as centernet2_r50_fpn.py. Pretrained: the official swin_large_patch4_window12_384_22k.pth
# (converted to mmdet key names on load by convert_weights=True).
_base_ = './centernet2_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        pretrain_img_size=384,
        embed_dims=192,
        depths=(2, 2, 18, 2),
        num_heads=(6, 12, 24, 48),
        window_size=12,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        patch_size=4,
        patch_norm=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.3,
        use_abs_pos_embed=False,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        with_cp=False,
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/swin_large_patch4_window12_384_22k.pth')),
    neck=dict(in_channels=[384, 768, 1536]))
