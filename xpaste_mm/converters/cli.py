"""Command-line driver shared by the backbone converter scripts in tools/model_converters/."""
from __future__ import annotations

import argparse
from collections.abc import Callable

from .common import ConversionError, finalize, load_source_checkpoint


def run_backbone_conversion(description: str, convert: Callable, target_cfg: dict,
                            argv: list[str] | None = None) -> int:
    """Parse ``SRC DST [--trust-pickle]``, convert, print the report; 0 on success, 1 if refused."""
    from .backbones import build_backbone_state

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help='source checkpoint (.pth/.pt, or .pkl with --trust-pickle)')
    parser.add_argument('dst', help='converted checkpoint to write (.pth)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='allow loading Python pickles (can execute code: trusted files only)')
    args = parser.parse_args(argv)
    converted, report = convert(load_source_checkpoint(args.src, args.trust_pickle),
                                build_backbone_state(target_cfg))
    print(report.summary())
    try:
        finalize(converted, report, args.dst, meta=dict(source=str(args.src), backbone=target_cfg))
    except ConversionError as exc:
        print(exc)
        return 1
    print(f'wrote {args.dst}')
    return 0
