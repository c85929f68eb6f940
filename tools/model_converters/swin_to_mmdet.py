"""Convert an official Swin-L 22k-384 checkpoint (swin_large_patch4_window12_384_22k.pth) for mmdet.

    python tools/model_converters/swin_to_mmdet.py swin_large_patch4_window12_384_22k.pth \
        pretrained/swin_large_patch4_window12_384_22k_mmdet.pth

The Swin-L configs load the official file and convert it on load (``convert_weights=True``); a file
written by this script is already converted, so use it with
``--cfg-options model.backbone.convert_weights=False model.backbone.init_cfg.checkpoint=FILE``.
This script checks every key and shape and reports what is dropped.
"""
import sys

from xpaste_mm.converters import SWIN_L_CFG, convert_official_swin
from xpaste_mm.converters.cli import run_backbone_conversion

if __name__ == '__main__':
    sys.exit(run_backbone_conversion(__doc__.splitlines()[0], convert_official_swin, SWIN_L_CFG))
