# Swin-L baseline at X-Paste's schedule (Xpaste_swinL.yaml without pasting): 180k iterations, lr 1e-4,
# EMA 0.999, total batch 16 (8 GPUs x 2), 896 px.
_base_ = [
    '../_base_/models/centernet2_swin-l_fpn.py',
    '../_base_/datasets/lvis_v1_instance_rfs-lsj-896.py',
    '../_base_/schedules/centernet2_adamw-cosine_180k-ema.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(checkpoint=dict(interval=30000))
