"""Checkpoint converters (pretrained backbones, official X-Paste/Detic detectron2 checkpoints)."""
from .backbones import (
                        RESNET50_CFG,
                        SWIN_L_CFG,
                        build_backbone_state,
                        convert_miil_resnet50,
                        convert_official_swin,
)
from .common import ConversionError, ConversionReport, finalize, load_source_checkpoint

__all__ = [
    'RESNET50_CFG', 'SWIN_L_CFG', 'ConversionError', 'ConversionReport', 'build_backbone_state',
    'convert_miil_resnet50', 'convert_official_swin', 'finalize', 'load_source_checkpoint',
]
