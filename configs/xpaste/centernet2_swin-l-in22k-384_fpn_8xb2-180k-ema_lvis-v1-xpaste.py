# X-Paste (Xpaste_swinL.yaml): its equal-schedule Swin-L baseline (180k, EMA, 896 px) plus pasting as in
# centernet2_r50-in21k_fpn_8xb8-180k-ema_lvis-v1-xpaste.py.
_base_ = './centernet2_swin-l-in22k-384_fpn_8xb2-180k-ema_lvis-v1.py'
from xpaste_mm.utils.xpaste_config import add_xpaste  # noqa: E402

xpaste_pool_file = 'data/xpaste_pool/pool/pool_index.npz'  # written by pool_builder (work dir data/xpaste_pool)
train_dataloader, custom_hooks = add_xpaste(_base_, xpaste_pool_file, _base_.category_stats_file)
