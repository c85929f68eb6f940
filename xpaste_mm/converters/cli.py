"""Command-line drivers shared by the converter scripts in tools/model_converters/.

Exit codes: 0 written, 1 refused (the checkpoint does not fit the target model: missing weights, shape
mismatches, unexpected keys), 2 bad input (a missing file, a file that is not a checkpoint or cannot be
unpickled, an untrusted pickle, a config that does not exist or does not build). Errors are printed
as one message, never as a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REFUSED,
    ConversionError,
    InputError,
    check_source_file,
    finalize,
    load_source_checkpoint,
)


def run_guarded(main: Callable[[], int]) -> int:
    """Run a converter's body; report an :class:`InputError` (exit 2) or a refused conversion (exit 1)
    as a message on stderr."""
    try:
        return main()
    except InputError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConversionError as exc:
        print(f'conversion refused: {exc}', file=sys.stderr)
        return EXIT_REFUSED


def resolve_config(config: str | os.PathLike) -> Path:
    """The absolute path of an existing config file (relative paths: against the current directory)."""
    path = Path(config)
    if not path.is_file():
        raise InputError(f'config {path} does not exist (relative paths are resolved against the current '
                         f'directory {Path.cwd()}); pass --config with the path of the target model config')
    return path.resolve()


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``SRC DST [--trust-pickle]`` arguments every converter takes."""
    parser.add_argument('src', help='source checkpoint (.pth/.pt, or .pkl with --trust-pickle)')
    parser.add_argument('dst', help='converted checkpoint to write (.pth)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='allow loading Python pickles (can execute code: trusted files only)')


def run_backbone_conversion(description: str, convert: Callable, target_cfg: dict,
                            argv: list[str] | None = None) -> int:
    """Parse ``SRC DST [--trust-pickle]``, convert, print the report; exit code as in the module doc."""
    from .backbones import build_backbone_state

    parser = argparse.ArgumentParser(description=description)
    add_source_arguments(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        check_source_file(args.src, args.trust_pickle)
        target = build_backbone_state(target_cfg)
        converted, report = convert(load_source_checkpoint(args.src, args.trust_pickle), target)
        print(report.summary())
        finalize(converted, report, args.dst, meta=dict(source=str(args.src), backbone=target_cfg))
        print(f'wrote {args.dst}')
        return EXIT_OK

    return run_guarded(body)
