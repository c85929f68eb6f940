"""Command line of ``tools/analysis_tools/gpu_check.py``."""
from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from pathlib import Path

from .context import Settings
from .phases import GROUPS, PHASES, parse_limits, select_phases
from .report import format_table
from .runner import run_checks

#: Flags that override a :class:`Settings` field of the same name when given.
SIZE_FLAGS = (('--train-iters', int, 'timed training iterations per training phase'),
              ('--warmup-iters', int, 'untimed training iterations first'),
              ('--r50-batch', int, 'R50 images per iteration (default: the config\'s 8)'),
              ('--swinl-batch', int, 'Swin-L images per iteration (default: the config\'s 2)'),
              ('--train-workers', int, 'dataloader workers while training (default: the config\'s 8, at most '
                                       'the CPU count)'),
              ('--loader-batches', int, 'timed batches per worker count in the dataloader phase'),
              ('--sd-steps', int, 'denoising steps per image (default: the recipe\'s 50)'),
              ('--sd-batch', int, 'images per generation call (default: the recipe\'s 4)'),
              ('--sd-batches', int, 'timed generation calls'),
              ('--segment-batch', int, 'images per segmenter call (default: the recipe\'s 8)'),
              ('--score-batch', int, 'images per CLIP scoring call (default: the recipe\'s 32)'),
              ('--infer-images', int, 'timed inference images'))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='gpu_check.py', formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Check and time every CUDA path of xpaste-mm on this machine, phase by phase; print one '
                    'table (phase, figure, value, unit, device) and write it as JSON.',
        epilog='phases:\n' + '\n'.join(f'  {p.name:<17} {p.summary} (limit {p.limit_s:.0f} s'
                                       f'{", CUDA only" if p.cuda_only else ""})' for p in PHASES)
               + '\ngroups: ' + ', '.join(f'{g} ({" ".join(n)})' for g, n in GROUPS.items() if g != 'all')
               + '\n\nexit status: 0 every phase passed, 1 a phase failed or timed out, 2 a phase was '
                 'refused (its requirement is absent; the message says how to fix it)')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda; cpu with --smoke)')
    parser.add_argument('--phases', nargs='+', metavar='PHASE',
                        help='phases or groups to run, in the fixed order (default: all that apply to the '
                             'device)')
    parser.add_argument('--smoke', action='store_true',
                        help='tiny models and sizes (a CPU run in seconds, used by the test suite)')
    parser.add_argument('--time-limit', nargs='+', metavar='[PHASE=]SECONDS',
                        help='hard limit of every phase, or of one phase/group (repeatable items)')
    parser.add_argument('--work-dir', default='work_dirs/gpu_check',
                        help='synthetic data, model folders (reused by later runs) and the JSON')
    parser.add_argument('--out', help='JSON file (default: WORK_DIR/gpu_check_<UTC time>.json)')
    parser.add_argument('--in-process', action='store_true',
                        help='run phases in this process (no hard limits; for debugging and tests)')
    parser.add_argument('--loader-workers', nargs='+', type=int, metavar='N',
                        help='worker counts of the dataloader phase (default: 0 4 8)')
    parser.add_argument('--checkpoint',
                        help='converted R50 weights for the inference phase (default: random weights)')
    for flag, kind, text in SIZE_FLAGS:
        parser.add_argument(flag, type=kind, help=text)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    names = [flag[2:].replace('-', '_') for flag, _, _ in SIZE_FLAGS]
    overrides = {name: getattr(args, name) for name in names}
    overrides.update(loader_workers=args.loader_workers, checkpoint=args.checkpoint, device=args.device)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    overrides['work_dir'] = args.work_dir
    return Settings.smoke_defaults(**overrides) if args.smoke else Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    try:
        phases = select_phases(args.phases, settings.device)
        default_limit, limits = parse_limits(args.time_limit)
    except ValueError as exc:
        parser.error(str(exc))
    report = run_checks(settings, phases, default_limit, limits, in_process=args.in_process,
                        argv=list(sys.argv[1:] if argv is None else argv))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%d-%H%M%S')
    out = Path(args.out or Path(settings.work_dir) / f'gpu_check_{stamp}.json')
    meta = report.meta
    print(f'\n{meta["device_name"]}; torch {meta["torch"]} (CUDA {meta["torch_cuda"]}), mmcv {meta["mmcv"]} '
          f'(ops CUDA {meta["mmcv_ops_cuda"]}), mmdet {meta["mmdet"]}, diffusers {meta["diffusers"]}, '
          f'open_clip {meta["open_clip"]}; {meta["date"]}{"; SMOKE sizes" if settings.smoke else ""}\n')
    print(format_table(report))
    print(f'\nJSON: {report.write_json(out)}')
    return report.exit_code()
