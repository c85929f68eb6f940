"""Convert an official X-Paste / Detic CenterNet2 checkpoint (detectron2 .pth/.pkl) for xpaste-mm.

    python tools/model_converters/xpaste_to_mmdet.py Xpaste_R50.pth checkpoints/xpaste_r50_mmdet.pth \
        --config configs/xpaste/centernet2_r50-in21k_fpn_8xb8-180k-ema_lvis-v1-xpaste.py

Without --config the R50 LVIS X-Paste config of this repository is used (found next to this script,
whatever the current directory). The config is checked and its model built before the checkpoint is
loaded. Uses the EMA weights (``model_ema``, what the official evaluation uses) unless --use-model is
given, strips a ``module.`` prefix, maps every key by an explicit table with shape checks against the
model the config builds, prints a report naming the config and writes nothing if a weight is missing or
a shape disagrees. Exit codes: 0 written, 1 refused, 2 bad input (see xpaste_mm.converters.cli).
"""
import argparse
import sys
from pathlib import Path

from xpaste_mm.converters import finalize, load_source_checkpoint
from xpaste_mm.converters.cli import add_source_arguments, resolve_config, run_guarded
from xpaste_mm.converters.common import EXIT_OK, check_source_file
from xpaste_mm.converters.xpaste_detectron2 import build_model_state, convert_xpaste_checkpoint

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_ROOT / 'configs/xpaste/centernet2_r50-in21k_fpn_8xb8-180k-ema_lvis-v1-xpaste.py'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_source_arguments(parser)
    parser.add_argument('--config', default=str(DEFAULT_CONFIG),
                        help='config of the target model (default: the R50 LVIS X-Paste config of this '
                             'repository)')
    parser.add_argument('--use-model', action='store_true',
                        help='convert the raw "model" weights instead of "model_ema"')
    args = parser.parse_args(argv)

    def body() -> int:
        check_source_file(args.src, args.trust_pickle)
        config = resolve_config(args.config)
        target = build_model_state(config)
        checkpoint = load_source_checkpoint(args.src, args.trust_pickle)
        converted, report = convert_xpaste_checkpoint(checkpoint, target, use_ema=not args.use_model)
        report.notes.append(f'target model: built from config {config}')
        print(report.summary())
        finalize(converted, report, args.dst, meta=dict(source=str(args.src), config=str(config)))
        print(f'wrote {args.dst} (checked against {config})')
        return EXIT_OK

    return run_guarded(body)


if __name__ == '__main__':
    sys.exit(main())
