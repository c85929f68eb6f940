"""Checkpoint converters (pretrained backbones, official X-Paste/Detic detectron2 checkpoints)."""
from .backbones import (
                        RESNET50_CFG,
                        SWIN_L_CFG,
                        build_backbone_state,
                        convert_miil_resnet50,
                        convert_official_swin,
)
from .common import (
    ConversionError,
    ConversionReport,
    InputError,
    check_source_file,
    finalize,
    load_source_checkpoint,
)

__all__ = [
    'RESNET50_CFG', 'SWIN_L_CFG', 'ConversionError', 'ConversionReport', 'InputError',
    'build_backbone_state', 'check_source_file', 'convert_miil_resnet50', 'convert_official_swin', 'finalize',
    'load_source_checkpoint',
]
