# Baseline at X-Paste's schedule (180k iterations, lr 1e-4, EMA 0.999), i.e. the fair comparison for the
# X-Paste configs, which the original only reports against the 90k baseline.
_base_ = [
    '../_base_/models/centernet2_r50_fpn.py',
    '../_base_/datasets/lvis_v1_instance_rfs-lsj-640.py',
    '../_base_/schedules/centernet2_adamw-cosine_180k-ema.py',
    '../_base_/default_runtime.py',
]
default_hooks = dict(checkpoint=dict(interval=30000))
