# Baseline: CenterNet2 Swin-L (ImageNet-22k, 384) on LVIS v1, 896 px large-scale jitter, total batch 16
# (8 GPUs x 2), 90k iterations, no EMA. lr 1e-4 (X-Paste's Swin-L lr at batch 16; the R50 baseline's 2e-4 is
# for batch 64 and no 90k Swin-L recipe was released).
_base_ = [
    '../_base_/models/centernet2_swin-l_fpn.py',
    '../_base_/datasets/lvis_v1_instance_rfs-lsj-896.py',
    '../_base_/schedules/centernet2_adamw-cosine_90k.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
auto_scale_lr = dict(base_batch_size=16)
