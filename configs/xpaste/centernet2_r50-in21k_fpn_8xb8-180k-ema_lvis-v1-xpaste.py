# X-Paste (Xpaste_R50.yaml): its equal-schedule baseline (180k, EMA) plus pasting 0..19 pool instances per
# training image (category-balanced 'cas_random', hard 'basic' blending) after resize/crop/flip; paste
# statistics logged by PasteStatsHook. Build the pool and the category statistics (size prior +
# federated-loss weights, the file the model base already reads) with `xpaste-pool run` / `xpaste-pool stats`.
_base_ = './centernet2_r50-in21k_fpn_8xb8-180k-ema_lvis-v1.py'
from xpaste_mm.utils.xpaste_config import add_xpaste  # noqa: E402

xpaste_pool_file = 'data/xpaste_pool/pool/pool_index.npz'  # written by pool_builder (work dir data/xpaste_pool)
train_dataloader, custom_hooks = add_xpaste(_base_, xpaste_pool_file, _base_.category_stats_file)
