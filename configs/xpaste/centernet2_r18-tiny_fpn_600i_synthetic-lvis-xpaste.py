# The tiny CPU CenterNet2 trained with X-Paste on the synthetic LVIS data: what `tools/run_pipeline.py`
# (the offline end-to-end demo) trains. Paths are relative to the demo's output folder, which holds
#   data/synthetic_lvis/                      synthetic LVIS v1 train/val
#   data/xpaste_pool_synthetic/pool/          the pool built by pool_builder from synthetic object images
#   data/xpaste_pool_synthetic/category_stats.json   size prior (pool_builder stats)
# Its equal-schedule baseline is centernet2_r18-tiny_fpn_600i_synthetic-lvis.py.
_base_ = './centernet2_r18-tiny_fpn_600i_synthetic-lvis.py'
from xpaste_mm.utils.xpaste_config import add_xpaste  # noqa: E402

pool_work_dir = 'data/xpaste_pool_synthetic/'
xpaste_pool_file = pool_work_dir + 'pool/pool_index.npz'
# X-Paste: 0..9 pool instances per image, class-balanced, sized by the category's size prior.
train_dataloader, custom_hooks = add_xpaste(_base_, xpaste_pool_file, pool_work_dir + 'category_stats.json',
                                            max_num_pasted=10)
