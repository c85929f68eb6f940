"""Convert the ImageNet-21k MIIL ResNet-50 (timm layout, e.g. resnet50_miil_21k.pth) for mmdet's ResNet.

    python tools/model_converters/miil_resnet50_to_mmdet.py resnet50_miil_21k.pth \
        pretrained/resnet50_miil_21k_mmdet.pth
"""
import sys

from xpaste_mm.converters import RESNET50_CFG, convert_miil_resnet50
from xpaste_mm.converters.cli import run_backbone_conversion

if __name__ == '__main__':
    sys.exit(run_backbone_conversion(__doc__.splitlines()[0], convert_miil_resnet50, RESNET50_CFG))
