"""Convert an official X-Paste / Detic CenterNet2 checkpoint (detectron2 .pth/.pkl) for xpaste-mm.

    python tools/model_converters/xpaste_to_mmdet.py Xpaste_R50.pth checkpoints/xpaste_r50_mmdet.pth \
        --config configs/xpaste/centernet2_r50-in21k_fpn_8xb8-180k-ema_lvis-v1-xpaste.py

Uses the EMA weights (``model_ema``, what the official evaluation uses) unless --use-model is given,
strips a ``module.`` prefix, maps every key by an explicit table with shape checks against the model
the config builds, prints a report and writes nothing if a weight is missing or a shape disagrees.
"""
import argparse
import sys

from xpaste_mm.converters import ConversionError, finalize, load_source_checkpoint
from xpaste_mm.converters.xpaste_detectron2 import build_model_state, convert_xpaste_checkpoint

DEFAULT_CONFIG = 'configs/xpaste/centernet2_r50-in21k_fpn_8xb8-180k-ema_lvis-v1-xpaste.py'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='detectron2 checkpoint (.pth, or .pkl with --trust-pickle)')
    parser.add_argument('dst', help='converted checkpoint to write (.pth)')
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='config of the target model')
    parser.add_argument('--use-model', action='store_true',
                        help='convert the raw "model" weights instead of "model_ema"')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='allow loading Python pickles (can execute code: trusted files only)')
    args = parser.parse_args(argv)
    try:
        checkpoint = load_source_checkpoint(args.src, args.trust_pickle)
        converted, report = convert_xpaste_checkpoint(checkpoint, build_model_state(args.config),
                                                      use_ema=not args.use_model)
        print(report.summary())
        finalize(converted, report, args.dst, meta=dict(source=str(args.src), config=args.config))
    except ConversionError as exc:
        print(f'conversion refused: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
