"""``xpaste-lvis-eval``: LVIS evaluation of result files, lvis-api's numbers, no mmdet needed.

    xpaste-lvis-eval lvis_v1_val.json results.json --iou-type bbox segm boundary --out metrics.json
    xpaste-lvis-eval lvis_v1_val.json model.bbox.json model.segm.json --iou-type bbox segm

Prints lvis-api's summary table per iou type (and per-category AP with ``--per-category``); exit
status 2 with a message naming the file and record for bad input.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

from ..utils.io import atomic_write_json
from .lvis_fast_eval import IOU_TYPES
from .lvis_file_eval import evaluate_result_files, per_category_ap
from .lvis_ground_truth import LVISGroundTruth
from .lvis_result_files import ResultFileError
from .lvis_summary import format_results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='xpaste-lvis-eval', description=__doc__.split('\n')[0])
    parser.add_argument('gt', help='LVIS v1 annotation json (e.g. lvis_v1_val.json)')
    parser.add_argument('results', help='result json: a list of {image_id, category_id, score, bbox '
                        '[x, y, w, h], segmentation (RLE or polygons)}')
    parser.add_argument('results_segm', nargs='?', default=None,
                        help='separate result json for segm / boundary (as mmdet writes *.segm.json)')
    parser.add_argument('--iou-type', nargs='+', default=['bbox'], choices=IOU_TYPES,
                        help='what to evaluate; boundary = Boundary AP (dilation ratio 0.02)')
    parser.add_argument('--workers', type=int, default=None,
                        help='forked processes (default: usable cores, at most 8)')
    parser.add_argument('--per-category', action='store_true', help='print the AP of every category')
    parser.add_argument('--out', default=None, help='write the metrics (and per-category AP) as json')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    return parser.parse_args(argv)


def _category_lines(rows: list[dict]) -> list[str]:
    lines = [f'{"id":>5}  {"freq":<4}  {"AP":>6}  name']
    for row in rows:
        ap = 'n/a' if math.isnan(row['AP']) else f'{row["AP"]:.3f}'
        lines.append(f'{row["id"]:>5}  {row["frequency"]:<4}  {ap:>6}  {row["name"]}')
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = [args.results] + ([args.results_segm] if args.results_segm else [])
    start = time.perf_counter()
    try:
        gt = LVISGroundTruth.from_file(args.gt)
        outputs = evaluate_result_files(gt, results, args.iou_type, num_workers=args.workers,
                                        progress=not args.no_progress)
    except (ResultFileError, ValueError, FileNotFoundError, RuntimeError) as error:  # bad input, no core
        print(f'xpaste-lvis-eval: error: {error}', file=sys.stderr)
        return 2
    report: dict = {}
    for iou_type, output in outputs.items():
        print(f'\n{iou_type} ({len(gt.image_ids)} images, {gt.num_categories} categories)')
        print('\n'.join(format_results(output.results)))
        report[iou_type] = dict(output.results)
        if args.per_category:
            rows = per_category_ap(gt, output)
            print('\n'.join(_category_lines(rows)))
            report[f'{iou_type}_per_category'] = [{**r, 'AP': None if math.isnan(r['AP']) else r['AP']}
                                                  for r in rows]
    print(f'\nevaluated in {time.perf_counter() - start:.1f} s')
    if args.out:
        atomic_write_json(args.out, report, indent=1)
        print(f'metrics written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
