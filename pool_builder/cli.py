"""Command line: ``xpaste-pool <command> ...`` or ``python -m pool_builder <command> ...``.

``xpaste-pool run CONFIG [--stages ...] [--cfg-options key=value ...]`` runs stages from a config
file. ``xpaste-pool <stage> --work-dir DIR [--key value ...]`` runs one stage: its flags are the keys
of the stage's config section (``--images-per-category`` is ``generate.images_per_category``), made
from the same option classes (``options.py``), so names, defaults and path rules are those of a config.
``export-xpaste``/``import-xpaste`` convert between the pool index and X-Paste's pool JSON.

Exit status: 0 = done; 1 = done, but some categories/images failed (listed under
``<work>/failures/``, rerun to retry them); 2 = bad input or configuration, or the shard is being
written by another process (message on stderr).

Parsing the command line imports neither torch nor mmdet; a stage loads what it needs when it runs.
"""
from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path

from .errors import PoolBuilderError
from .options import SHARDED_STAGES, STAGE_OPTIONS, STAGE_ORDER, WORK_DIR_STAGES, VocabularyOptions

EXIT_OK, EXIT_FAILURES, EXIT_BAD_INPUT = 0, 1, 2
STAGE_HELP = dict(generate='text-to-image candidates per category', ingest='add your own or retrieved images',
                  segment='soft masks with one or more segmenters', score='CLIP score and area of every mask',
                  filter='select, crop and index the pool',
                  stats='category size statistics + counts from a training annotation file',
                  inspect='report, histograms and contact sheets of a pool')


def _ids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(',') if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'expected category ids such as 1,5,9, got {text!r}') from exc


def _flag_kind(hint) -> tuple[type, bool]:
    """(value type, is a list) of an option's type hint (``X | None`` -> X)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is tuple or typing.get_origin(hint) in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return (args[0] if args and args[0] in (int, float) else str), True
    return hint, False


def add_option_flags(parser: argparse.ArgumentParser, cls: type, section: str, stage: str) -> None:
    """One flag per option of ``cls`` (dest ``section.key``; only given flags enter the config)."""
    hints = typing.get_type_hints(cls)
    for spec in fields(cls):
        meta = spec.metadata
        if 'stages' in meta and stage not in meta['stages']:
            continue
        kind, many = _flag_kind(hints[spec.name])
        default = spec.default if spec.default is not MISSING else None
        shown = ' '.join(map(str, default)) if isinstance(default, tuple) else default
        kwargs: dict = dict(dest=f'{section}.{spec.name}', default=argparse.SUPPRESS,
                            help=f'{meta.get("help", "")} (config {section}.{spec.name}; default: {shown})')
        if kind is bool:
            kwargs['action'] = argparse.BooleanOptionalAction
        else:
            kwargs['type'] = _ids if kind is int and many else kind
            kwargs['metavar'] = spec.name.upper()
            if many:
                kwargs['nargs'] = '+'
            if 'choices' in meta:
                kwargs['choices'] = meta['choices']
        parser.add_argument(meta.get('flag', '--' + spec.name.replace('_', '-')), **kwargs)


def _check_count(text: str) -> int | str:
    if text == 'all':
        return text
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'expected a number of files or "all", got {text!r}') from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='xpaste-pool', description='Build an X-Paste instance pool: '
                                     'generate -> segment -> score -> filter -> inspect.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    p = sub.add_parser('run', help='the configured stages from one config file')
    p.add_argument('config')
    p.add_argument('--stages', nargs='+', choices=STAGE_ORDER, help='only these stages (in pipeline order)')
    _add_process_flags(p)
    from mmengine.config import DictAction

    p.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                   help='override config keys, e.g. generate.images_per_category=10')
    for stage in STAGE_ORDER:
        p = sub.add_parser(stage, help=f'{STAGE_HELP[stage]} (the "{stage}" section of a run config)')
        p.add_argument('--work-dir', required=stage in WORK_DIR_STAGES,
                       help='work directory of the pool build (config work_dir; relative outputs go there'
                            + ('' if stage in WORK_DIR_STAGES else '; default: the current directory') + ')')
        if stage in SHARDED_STAGES:
            _add_process_flags(p)
        else:
            p.add_argument('--log-level', default='INFO')
        add_option_flags(p, VocabularyOptions, 'vocabulary', stage)
        add_option_flags(p, STAGE_OPTIONS[stage], stage, stage)
    p = sub.add_parser('export-xpaste', help='pool index -> X-Paste pool JSON')
    p.add_argument('--index', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--vocab', help='category file giving the label order (default: LVIS ids - 1)')
    p = sub.add_parser('import-xpaste', help='X-Paste pool JSON -> pool index')
    p.add_argument('--json', required=True, help='relative entries are relative to its folder')
    p.add_argument('--out', required=True, help='pool_index.npz to write (relative crop paths are '
                                                'rewritten relative to its folder)')
    p.add_argument('--vocab', help='category file giving the label order (default: LVIS ids - 1)')
    p.add_argument('--check', type=_check_count, default=256, metavar='N|all',
                   help='crop files tested for existence (evenly spread; default 256); refuses when none '
                        'exists')
    p.add_argument('--crop-levels', action='store_true',
                   help='also write the crop levels next to the index (fast pasting; decodes every crop)')

    return parser


def _add_process_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--device', help='auto (CUDA if available), cuda, cuda:1, cpu (config device)')
    parser.add_argument('--shard', help='INDEX/COUNT of this process (default: torchrun or SLURM '
                                        'environment, else 0/1)')
    parser.add_argument('--log-level', default='INFO')


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (PoolBuilderError, FileNotFoundError, ValueError, TimeoutError) as exc:
        print(f'xpaste-pool {args.command}: error: {exc}', file=sys.stderr)
        return EXIT_BAD_INPUT


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == 'export-xpaste':
        return _export_xpaste(args)
    if args.command == 'import-xpaste':
        return _import_xpaste(args)
    from .pipeline import load_run_config, run_pipeline
    from .sharding import resolve_shard

    if args.command == 'run':
        config, stages = load_run_config(args.config, args.cfg_options), args.stages
    else:
        config, stages = config_from_flags(args), [args.command]
    shard = resolve_shard(getattr(args, 'shard', None))
    results = run_pipeline(config, stages, shard, getattr(args, 'device', None), args.log_level)
    status = EXIT_OK
    for stage, result in results.items():
        print(f'{stage}: wrote {result}' if isinstance(result, Path) else result)
        if getattr(result, 'index_path', None):
            print(f'pool index: {result.index_path}')
        if not getattr(result, 'ok', True):
            status = EXIT_FAILURES
    return status


def config_from_flags(args: argparse.Namespace) -> dict:
    """The run config of a stage command: the given flags under their config keys."""
    config: dict = dict(work_dir=args.work_dir, vocabulary={}, **{args.command: {}})
    for dest, value in vars(args).items():
        section, _, key = dest.partition('.')
        if key:
            if isinstance(value, list) and value and isinstance(value[0], list):  # 1,2 3 -> [1, 2, 3]
                value = [item for part in value for item in part]
            config[section][key] = value
    return config


def _export_xpaste(args: argparse.Namespace) -> int:
    from xpaste_mm.datasets.pool_index import PoolIndex
    from xpaste_mm.utils.io import remove_temp_files

    from .vocabulary import load_vocabulary

    ids = load_vocabulary(args.vocab).ids if args.vocab else None
    out = Path(args.out)
    remove_temp_files(out.parent, out.name)  # of an interrupted earlier export
    print(f'wrote {PoolIndex.load(args.index).to_xpaste_json(out, category_ids=ids)}')
    return EXIT_OK


def _import_xpaste(args: argparse.Namespace) -> int:
    from xpaste_mm.datasets.crop_store import write_crop_levels
    from xpaste_mm.datasets.pool_index import import_checked_xpaste_json

    from .vocabulary import load_vocabulary

    ids = load_vocabulary(args.vocab).ids if args.vocab else None
    out, message = import_checked_xpaste_json(args.json, args.out, ids, args.check)
    print(message)
    if args.crop_levels:
        print(f'wrote {write_crop_levels(out)}')
    return EXIT_OK
