"""Command line: ``xpaste-pool <stage> ...`` or ``python -m pool_builder <stage> ...``.

Exit status: 0 = done; 1 = done, but some categories/images failed (listed under
``<work>/failures/``, rerun to retry them); 2 = bad input or configuration (message on stderr).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mmengine.config import DictAction

from .errors import PoolBuilderError

EXIT_OK, EXIT_FAILURES, EXIT_BAD_INPUT = 0, 1, 2


def _ids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(',') if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'expected comma-separated category ids, got {text!r}') from exc


def _check_count(text: str) -> int | str:
    if text == 'all':
        return text
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'expected a number of files or "all", got {text!r}') from exc


def _common_parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """(options of every work-dir command, extra options of the sharded model stages)."""
    work = argparse.ArgumentParser(add_help=False)
    work.add_argument('--work-dir', required=True, help='work directory of the pool build')
    work.add_argument('--vocab', help='category file: LVIS/COCO annotation JSON, JSON list or text list '
                                      '(default: the one recorded in the work dir)')
    work.add_argument('--log-level', default='INFO')
    sharded = argparse.ArgumentParser(add_help=False)
    sharded.add_argument('--categories', type=_ids, help='only these category ids, e.g. 1,5,9')
    sharded.add_argument('--device', default='auto', help='auto (CUDA if available), cuda, cuda:1, cpu')
    sharded.add_argument('--shard', help='INDEX/COUNT of this process (default: torchrun or SLURM '
                                         'environment, else 0/1)')
    return work, sharded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='xpaste-pool', description='Build an X-Paste instance pool: '
                                     'generate -> segment -> score -> filter -> inspect.')
    sub = parser.add_subparsers(dest='stage', required=True, metavar='STAGE')
    work, sharded = _common_parsers()
    common = [work, sharded]

    p = sub.add_parser('generate', parents=common, help='text-to-image candidates per category')
    p.add_argument('--model', default='runwayml/stable-diffusion-v1-5', help='diffusers hub id or folder')
    p.add_argument('--scheduler', default='DPMSolverMultistepScheduler',
                   help='diffusers scheduler class ("" keeps the pipeline\'s)')
    p.add_argument('--steps', type=int, default=50)
    p.add_argument('--guidance', type=float, default=7.5)
    p.add_argument('--height', type=int, default=512)
    p.add_argument('--width', type=int, default=512)
    p.add_argument('--dtype', default='auto', help='auto (fp16 on CUDA), fp16, fp32, bf16')
    p.add_argument('--negative-prompt')
    p.add_argument('-n', '--images-per-category', type=int, default=100)
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--seed', type=int, default=0, help='base seed; image seeds derive from it')
    p.add_argument('--no-safety-checker', action='store_true')
    p.add_argument('--template', action='append', help='prompt template with {name} (repeatable; '
                   'default "a photo of a single {name}")')
    p.add_argument('--synonyms', action='store_true', help='also prompt with every synonym')
    p.add_argument('--definitions', action='store_true', help='also prompt with "<prompt>, <definition>"')
    p.add_argument('--prompt-file', help='extra prompts per category (JSON or TSV)')

    p = sub.add_parser('ingest', parents=common, help='add your own or retrieved images')
    p.add_argument('--image-root', required=True, help='folder with one sub-folder of images per category')
    p.add_argument('--source', choices=('retrieved', 'own'), default='retrieved')
    p.add_argument('--copy', action='store_true', help='copy images into the work dir')
    p.add_argument('--skip-unknown-folders', action='store_true')

    p = sub.add_parser('segment', parents=common, help='soft masks with one or more segmenters')
    p.add_argument('--segmenter', action='append', dest='segmenters', metavar='TYPE[:key=value,...]',
                   help='repeatable; e.g. grabcut, clipseg:model=CIDAS/clipseg-rd64-refined, '
                        'birefnet:model=/models/BiRefNet (default: grabcut)')
    p.add_argument('--batch-size', type=int, default=8)

    p = sub.add_parser('score', parents=common, help='CLIP score and area of every mask')
    p.add_argument('--clip-model', default='ViT-L-14', help='open_clip name, hf-hub: id or local folder')
    p.add_argument('--clip-pretrained', default='openai', help='pretrained tag or checkpoint file')
    p.add_argument('--precision', default='auto')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--segmenters', nargs='+', help='segmenter folders to score (default: all)')

    p = sub.add_parser('filter', parents=[work], help='select, crop and index the pool')
    p.add_argument('--min-clip', type=float, default=21.0)
    p.add_argument('--min-area', type=float, default=0.05)
    p.add_argument('--max-area', type=float, default=0.95)
    p.add_argument('--tolerance', type=float, default=1.0)
    p.add_argument('--workers', type=int, default=0, help='crop processes (0 = all cores)')
    p.add_argument('--segmenters', nargs='+', help='segmenters to choose from, in tie-break order')
    p.add_argument('--overwrite', action='store_true', help='recompute crops that look up to date')
    p.add_argument('--xpaste-json', help='also export X-Paste\'s pool JSON to this path')

    p = sub.add_parser('inspect', help='report, histograms and contact sheets of a pool')
    p.add_argument('--index', required=True, help='pool_index.npz')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--vocab', help='category file (names; lists categories without instances)')
    p.add_argument('--min-instances', type=int, default=10)
    p.add_argument('--per-sheet', type=int, default=48)

    p = sub.add_parser('stats', help='category size statistics + counts from a training annotation file')
    p.add_argument('--ann-file', required=True)
    p.add_argument('--out', required=True, help='category_stats.json')

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

    p = sub.add_parser('run', help='all configured stages from one config file')
    p.add_argument('config')
    p.add_argument('--stages', nargs='+', help='only these stages (in pipeline order)')
    p.add_argument('--device')
    p.add_argument('--shard')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                   help='override config keys, e.g. generate.images_per_category=10')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (PoolBuilderError, FileNotFoundError, ValueError, TimeoutError) as exc:
        print(f'xpaste-pool {args.stage}: error: {exc}', file=sys.stderr)
        return EXIT_BAD_INPUT


def _status(summary) -> int:
    print(summary)
    return EXIT_OK if getattr(summary, 'ok', True) else EXIT_FAILURES


def _dispatch(args: argparse.Namespace) -> int:
    if args.stage == 'run':
        return _run(args)
    if args.stage == 'stats':
        from xpaste_mm.datasets.category_stats import compute_category_stats, save_category_stats

        print(f'wrote {save_category_stats(compute_category_stats(args.ann_file), args.out)}')
        return EXIT_OK
    if args.stage in ('export-xpaste', 'import-xpaste', 'inspect'):
        return _index_tools(args)

    from .layout import WorkDir
    from .sharding import resolve_device, resolve_shard
    from .stage import get_logger
    from .workspace import open_vocabulary

    work = WorkDir(args.work_dir)
    shard = resolve_shard(getattr(args, 'shard', None))
    logger = get_logger(work, shard, args.log_level)
    vocabulary = open_vocabulary(work, args.vocab)
    if args.stage == 'generate':
        from .generate import GenerateOptions, generate_images
        from .prompts import DEFAULT_GENERATION_TEMPLATE, PromptOptions

        options = GenerateOptions(
            model=args.model, scheduler=args.scheduler or None, num_inference_steps=args.steps,
            guidance_scale=args.guidance, height=args.height, width=args.width, dtype=args.dtype,
            negative_prompt=args.negative_prompt, images_per_category=args.images_per_category,
            batch_size=args.batch_size, seed=args.seed, safety_checker=not args.no_safety_checker)
        prompts = PromptOptions(templates=tuple(args.template or (DEFAULT_GENERATION_TEMPLATE,)),
                                synonyms=args.synonyms, definitions=args.definitions,
                                prompt_file=args.prompt_file)
        return _status(generate_images(work, vocabulary, options, prompts, shard,
                                       resolve_device(args.device, shard), args.categories, logger=logger))
    if args.stage == 'ingest':
        from .ingest import ingest_images

        return _status(ingest_images(work, vocabulary, args.image_root, args.source, args.copy,
                                     args.skip_unknown_folders, shard, logger, args.categories))
    if args.stage == 'segment':
        from .segment import segment_images
        from .segmenters import build_segmenter

        device = resolve_device(args.device, shard)
        segmenters = [build_segmenter(spec, device) for spec in args.segmenters or ['grabcut']]
        return _status(segment_images(work, vocabulary, segmenters, args.batch_size, shard, args.categories,
                                      logger=logger))
    if args.stage == 'score':
        from .scoring import ClipScorer, ScoreOptions, score_masks

        options = ScoreOptions(model=args.clip_model, pretrained=args.clip_pretrained or None,
                               precision=args.precision, batch_size=args.batch_size)
        scorer = ClipScorer(options.model, options.pretrained, resolve_device(args.device, shard),
                            options.precision)
        return _status(score_masks(work, vocabulary, scorer, options, args.segmenters, shard, args.categories,
                                   logger))
    if args.stage == 'filter':
        import os

        from .build import build_pool
        from .selection import FilterRule

        rule = FilterRule(args.min_clip, args.min_area, args.max_area, args.tolerance)
        summary = build_pool(work, vocabulary, rule, args.segmenters, args.workers or os.cpu_count() or 1,
                             args.overwrite, args.xpaste_json, logger)
        print(f'pool index: {summary.index_path}')
        return _status(summary)
    raise AssertionError(f'unhandled stage {args.stage}')


def _index_tools(args: argparse.Namespace) -> int:
    from xpaste_mm.datasets.pool_index import PoolIndex

    from .vocabulary import load_vocabulary

    vocabulary = load_vocabulary(args.vocab) if args.vocab else None
    ids = vocabulary.ids if vocabulary else None
    if args.stage == 'inspect':
        from .report import inspect_pool

        report = inspect_pool(args.index, args.out, vocabulary, args.min_instances, args.per_sheet)
        print(f'report: {report.report} ({len(report.flagged)} categories flagged, '
              f'{report.unreadable} unreadable crops)')
    elif args.stage == 'export-xpaste':
        print(f'wrote {PoolIndex.load(args.index).to_xpaste_json(args.out, category_ids=ids)}')
    else:
        from xpaste_mm.datasets.crop_store import write_crop_levels
        from xpaste_mm.datasets.pool_index import import_checked_xpaste_json

        out, message = import_checked_xpaste_json(args.json, args.out, ids, args.check)
        print(message)
        if args.crop_levels:
            print(f'wrote {write_crop_levels(out)}')
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from .pipeline import load_run_config, run_pipeline
    from .sharding import resolve_shard

    config = load_run_config(args.config, args.cfg_options)
    results = run_pipeline(config, args.stages, resolve_shard(args.shard), args.device)
    status = EXIT_OK
    for summary in results.values():
        print(summary)
        if not getattr(summary, 'ok', True):
            status = EXIT_FAILURES
    return status

