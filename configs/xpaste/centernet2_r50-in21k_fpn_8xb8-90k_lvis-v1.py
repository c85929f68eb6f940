# Baseline: CenterNet2 R50 (ImageNet-21k MIIL) on LVIS v1 with Detic's recipe (Base-C2_L_R5021k_640b64_4x):
# 90k iterations, total batch 64 (8 GPUs x 8), AdamW lr 2e-4, no EMA, 640 px large-scale jitter.
_base_ = [
    '../_base_/models/centernet2_r50_fpn.py',
    '../_base_/datasets/lvis_v1_instance_rfs-lsj-640.py',
    '../_base_/schedules/centernet2_adamw-cosine_90k.py',
    '../_base_/default_runtime.py',
]
