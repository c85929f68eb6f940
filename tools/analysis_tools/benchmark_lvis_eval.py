"""Benchmark LVIS evaluation: mmdet's ``LVISMetric`` (lvis-api) vs ``FastLVISMetric``.

Synthetic LVIS v1 val-like data at a realistic scale, from
:func:`xpaste_mm.testing.lvis_eval_data.generate_lvis_eval_data`: 1,203 categories with LVIS's long
tail (image counts and r/c/f groups read from ``lvis_v1_train_cat_info.json`` when given, else a
synthetic long tail with LVIS's group sizes), ~6 categories and ~12 polygon instances per image (some
crowded images), neg / not-exhaustive lists, and 300 detections per image (jittered hits, duplicates,
confusions, background boxes, a few zero-area boxes) with float32 boxes/scores and RLE masks.

Each evaluator runs in its own fresh process (bbox then segm, as ``compute_metrics`` does); the
parent samples the memory of that process and all its children every 0.5 s (summed PSS, so pages
that forked workers share with their parent count once; RSS where PSS is unavailable) and reports
the wall time of loading the annotations (metric construction) and of ``compute_metrics``, the peak
memory, and the largest difference of every LVIS key (unrounded) and of per-category precision /
recall against lvis-api.

    python tools/analysis_tools/benchmark_lvis_eval.py --num-images 1000
    python tools/analysis_tools/benchmark_lvis_eval.py --num-images 5000 \
        --cat-info /work/shared/data/lvis_v1/lvis_v1_train_cat_info.json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from xpaste_mm.testing.lvis_eval_data import DETS_PER_IMAGE, NUM_CATEGORIES, generate_lvis_eval_data

TASKS = ('bbox', 'segm')
EVALUATORS = ('lvis_api', 'fast')


# ----------------------------------------------------------------------------- evaluators (child side)
def _raw_from_faster_library(gt_path: str, predictions: list[dict]) -> dict:
    """faster-coco-eval's own LVIS mode on mmdet's result records (what the library alone gives)."""
    from faster_coco_eval import COCO, COCOeval_faster

    from xpaste_mm.evaluation.lvis_ground_truth import LVISGroundTruth
    from xpaste_mm.evaluation.lvis_results import to_json_records

    names = {'AP_all': 'AP', 'AP_50': 'AP50', 'AP_75': 'AP75', 'AP_small': 'APs', 'AP_medium': 'APm',
             'AP_large': 'APl', 'APr': 'APr', 'APc': 'APc', 'APf': 'APf', 'AR_all': 'AR@300',
             'AR_small': 'ARs@300', 'AR_medium': 'ARm@300', 'AR_large': 'ARl@300'}
    file_category_ids = LVISGroundTruth.from_file(gt_path).file_category_ids
    gt = COCO(gt_path)
    raw = {}
    for task in TASKS:
        evaluator = COCOeval_faster(gt, gt.loadRes(to_json_records(predictions, file_category_ids, task)),
                                    task, lvis_style=True, print_function=lambda *a: None)
        evaluator.params.maxDets = [DETS_PER_IMAGE]
        evaluator.run()
        stats = evaluator.stats_as_dict
        raw[task] = ({names[k]: v for k, v in stats.items() if k in names},
                     evaluator.eval['precision'][..., -1], evaluator.eval['recall'][..., -1])
    return raw


def _child(name: str, gt_path: str, pred_path: str, out_prefix: str, num_workers: int) -> None:
    """Run one evaluator: bbox then segm on all predictions; save timings and raw numbers."""
    import resource
    import sys as _sys

    _sys.stdout = open(f'{out_prefix}.log', 'w')  # lvis-api prints its summary; keep the console clean
    from mmdet.evaluation.metrics import lvis_metric

    import xpaste_mm  # noqa: F401  (registers FastLVISMetric, makes lvis-api work on numpy 2)
    from xpaste_mm.evaluation import ALL_RESULT_KEYS, FastLVISMetric

    def cpu_seconds() -> float:  # this process and its reaped children (the forked workers)
        return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF,
                   resource.RUSAGE_CHILDREN) for field in ('ru_utime', 'ru_stime'))

    with open(pred_path, 'rb') as f:
        predictions = pickle.load(f)
    start = time.perf_counter()
    recorded = {}
    if name == 'lvis_api':
        class RecordingLVISEval(lvis_metric.LVISEval):
            """lvis-api's LVISEval that also keeps its unrounded results for the comparison."""

            def summarize(self):
                super().summarize()
                recorded[self.params.iou_type] = (dict(self.results), self.eval['precision'],
                                                  self.eval['recall'])

        lvis_metric.LVISEval = RecordingLVISEval
        metric = lvis_metric.LVISMetric(ann_file=gt_path, metric=list(TASKS),
                                        metric_items=list(ALL_RESULT_KEYS))
        results = [(dict(img_id=p['img_id']), p) for p in predictions]
    elif name == 'fast':
        metric = FastLVISMetric(ann_file=gt_path, metric=list(TASKS), metric_items=list(ALL_RESULT_KEYS),
                                num_workers=num_workers)
        results = predictions
    loaded, cpu_start = time.perf_counter(), cpu_seconds()
    if name == 'faster_raw':
        recorded = _raw_from_faster_library(gt_path, predictions)
    else:
        metric.compute_metrics(results)
    done, cpu_s = time.perf_counter(), cpu_seconds() - cpu_start
    if name == 'fast':
        recorded = {t: (dict(o.results), o.precision, o.recall) for t, o in metric.last_eval.items()}
    arrays = {f'{t}_{kind}': value for t, (_, precision, recall) in recorded.items()
              for kind, value in (('precision', precision), ('recall', recall))}
    np.savez(f'{out_prefix}.npz', **arrays)
    maxrss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    with open(f'{out_prefix}.json', 'w') as f:
        json.dump(dict(load_s=loaded - start, eval_s=done - loaded, eval_cpu_s=cpu_s, maxrss_gb=maxrss_gb,
                       results={t: {k: float(v) for k, v in r.items()} for t, (r, _, _) in recorded.items()}),
                  f)


# ----------------------------------------------------------------------------- measurement (parent side)
def _memory(proc: psutil.Process) -> int:
    """Proportional set size of a process (bytes): shared pages split among the processes sharing them."""
    try:
        return proc.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return proc.memory_info().rss


def measure(name: str, gt_path: Path, pred_path: Path, out_dir: Path, num_workers: int) -> dict:
    """Run an evaluator in a fresh process; peak = max over time of the summed PSS of its process tree."""
    out_prefix = str(out_dir / f'result_{name}')
    process = multiprocessing.get_context('spawn').Process(
        target=_child, args=(name, str(gt_path), str(pred_path), out_prefix, num_workers))
    process.start()
    root = psutil.Process(process.pid)
    peak = 0
    while process.is_alive():
        total = 0
        try:
            for proc in [root] + root.children(recursive=True):
                try:
                    total += _memory(proc)
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            break
        peak = max(peak, total)
        time.sleep(0.5)  # reading PSS walks the page tables: sample sparsely to not slow the child
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f'evaluator {name} failed (exit code {process.exitcode}); see {out_prefix}.log')
    with open(f'{out_prefix}.json') as f:
        record = json.load(f)
    record['peak_gb'] = peak / 2 ** 30
    with np.load(f'{out_prefix}.npz') as arrays:
        record['arrays'] = dict(arrays)
    return record


def compare(reference: dict, other: dict) -> tuple[float, float]:
    """Largest |difference| over all result keys and over per-category precision / recall arrays."""
    key_diff = max(abs(reference['results'][t][k] - other['results'][t][k])
                   for t in reference['results'] for k in reference['results'][t])
    array_diff = max(float(np.abs(reference['arrays'][k] - other['arrays'][k]).max())
                     for k in reference['arrays'])
    return key_diff, array_diff


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=5000)
    parser.add_argument('--cat-info', default=None,
                        help='LVIS lvis_v1_train_cat_info.json for the real long tail (optional)')
    parser.add_argument('--work-dir', default='/tmp/lvis_eval_benchmark', help='data cache and outputs')
    parser.add_argument('--num-workers', type=int, default=2, help='processes of FastLVISMetric')
    parser.add_argument('--evaluators', nargs='+', default=list(EVALUATORS),
                        choices=EVALUATORS + ('faster_raw',),
                        help="'faster_raw' adds faster-coco-eval's own lvis_style mode for reference")
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    gt_path, pred_path = generate_lvis_eval_data(args.num_images, args.cat_info, args.seed, work_dir)
    with open(gt_path) as f:
        gt = json.load(f)
    num_anns, num_images = len(gt['annotations']), len(gt['images'])
    del gt
    print(f'{num_images} images, {num_anns} annotations, {NUM_CATEGORIES} categories, '
          f'{DETS_PER_IMAGE} detections per image, tasks {TASKS}')
    records = {}
    for name in args.evaluators:
        print(f'running {name} ...', flush=True)
        records[name] = measure(name, gt_path, pred_path, work_dir, args.num_workers)
    reference = records.get('lvis_api')
    print(f'\n{"evaluator":<12} {"load s":>8} {"eval s":>8} {"eval cpu s":>10} {"total s":>8} {"peak GB":>8} '
          f'{"main maxrss":>11} {"max key diff":>13} {"max P/R diff":>13}')
    for name, record in records.items():
        diffs = compare(reference, record) if reference is not None else (float('nan'),) * 2
        total_s = record['load_s'] + record['eval_s']
        print(f'{name:<12} {record["load_s"]:8.1f} {record["eval_s"]:8.1f} {record["eval_cpu_s"]:10.1f} '
              f'{total_s:8.1f} {record["peak_gb"]:8.2f} {record["maxrss_gb"]:11.2f} '
              f'{diffs[0]:13.2e} {diffs[1]:13.2e}')
    print(f'(machine load average over the last 15 min: {psutil.getloadavg()[2]:.1f} on '
          f'{psutil.cpu_count()} cores; eval cpu s: CPU time of the process tree; peak GB: summed PSS of '
          f'the process tree; main maxrss: peak RSS of the evaluating process alone, GB)')
    if reference is not None and 'fast' in records:
        fast = records['fast']
        total = {name: records[name]['load_s'] + records[name]['eval_s'] for name in ('lvis_api', 'fast')}
        print(f'\nspeed-up (eval): {reference["eval_s"] / fast["eval_s"]:.1f}x, '
              f'(load + eval): {total["lvis_api"] / total["fast"]:.1f}x; '
              f'peak memory: {fast["peak_gb"] / reference["peak_gb"]:.2f}x of lvis-api')
    for name, record in records.items():
        print(f'{name}: ' + ', '.join(f'{t}/{k}={v:.4f}' for t, r in record['results'].items()
                                      for k, v in r.items() if k in ('AP', 'APr', 'APc', 'APf')))


if __name__ == '__main__':
    sys.exit(main())
