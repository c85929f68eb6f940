# X-Paste + classic copy-paste (Xpaste_copypaste_swinL.yaml, USE_COPY_METHOD 'both'): pool pasting first,
# then Simple Copy-Paste of 0..N objects from another training image (cached recent images of the worker).
_base_ = './centernet2_swin-l-in22k-384_fpn_8xb2-180k-ema_lvis-v1-xpaste.py'
from xpaste_mm.utils.xpaste_config import add_copy_paste  # noqa: E402

train_dataloader = add_copy_paste(_base_, max_cached_images=20, max_num_pasted=100)
