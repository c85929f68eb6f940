"""Benchmark LVIS evaluation: lvis-api vs FastLVISMetric and the standalone ``xpaste-lvis-eval``.

Synthetic LVIS v1 val-like data at a realistic scale, from
:func:`xpaste_mm.testing.lvis_eval_data.generate_lvis_eval_data`: 1,203 categories with LVIS's long
tail (image counts and r/c/f groups read from ``lvis_v1_train_cat_info.json`` when given, else a
synthetic long tail with LVIS's group sizes), ~6 categories and ~12 polygon instances per image (some
crowded images), neg / not-exhaustive lists, and 300 detections per image (jittered hits, duplicates,
confusions, background boxes, a few zero-area boxes) with float32 boxes/scores and RLE masks. The
detections are also written as one lvis-api result json (box and RLE mask per record).

Each evaluator runs in its own fresh process; the parent samples the memory of that process and all
its children every 0.5 s (summed PSS, so pages that forked workers share with their parent count
once; RSS where PSS is unavailable) and reports the wall time of loading the annotations and of the
evaluation, the peak memory, and the largest difference of every LVIS key (unrounded) and of
per-category precision / recall against lvis-api. The standalone evaluator runs with mmdet, mmengine
and torch blocked, as in an environment without them; its eval time includes reading the json.

    python tools/analysis_tools/benchmark_lvis_eval.py --num-images 1000
    python tools/analysis_tools/benchmark_lvis_eval.py --num-images 5000 \
        --cat-info /work/shared/data/lvis_v1/lvis_v1_train_cat_info.json \
        --evaluators lvis_api_files files files_boundary
    # LVIS v1 val scale (lvis-api does not fit: extrapolate it from 1k / 5k)
    python tools/analysis_tools/benchmark_lvis_eval.py --num-images 20000 --cat-info ... \
        --evaluators files files_boundary
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

TASKS = ('bbox', 'segm')
MMDET_EVALUATORS = ('lvis_api', 'fast', 'faster_raw')
#: On the result json: lvis-api itself, and the standalone evaluator (bbox + segm, or boundary).
FILE_TASKS = {'files': ('bbox', 'segm'), 'files_boundary': ('boundary',)}
FILE_EVALUATORS = ('lvis_api_files',) + tuple(FILE_TASKS)
EVALUATORS = MMDET_EVALUATORS + FILE_EVALUATORS


# ----------------------------------------------------------------------------- evaluators (child side)
def _raw_from_faster_library(gt_path: str, predictions: list[dict]) -> dict:
    """faster-coco-eval's own LVIS mode on mmdet's result records (what the library alone gives)."""
    from faster_coco_eval import COCO, COCOeval_faster

    from xpaste_mm.evaluation.lvis_detections import MAX_DETS_PER_IMAGE
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
        evaluator.params.maxDets = [MAX_DETS_PER_IMAGE]
        evaluator.run()
        stats = evaluator.stats_as_dict
        raw[task] = ({names[k]: v for k, v in stats.items() if k in names},
                     evaluator.eval['precision'][..., -1], evaluator.eval['recall'][..., -1])
    return raw


class _Blocker:
    """Import finder refusing mmdet / mmengine / mmcv / torch: the standalone evaluator runs as in an
    environment without them."""

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmdet', 'mmengine', 'mmcv', 'torch', 'torchvision'):
            raise ModuleNotFoundError(name)


def _run_files(name: str, gt_path: str, results_path: str, num_workers: int, cpu_seconds) -> tuple:
    """lvis-api or the standalone evaluator on the result file; (load s, eval s, cpu s, recorded)."""
    recorded = {}
    if name == 'lvis_api_files':
        import lvis

        from xpaste_mm.compat.lvis_numpy import patch_lvis_for_numpy2
        patch_lvis_for_numpy2()
        start = time.perf_counter()
        gt = lvis.LVIS(gt_path)
        loaded, cpu_start = time.perf_counter(), cpu_seconds()
        for task in TASKS:
            evaluator = lvis.LVISEval(gt, lvis.LVISResults(gt, results_path), task)
            evaluator.run()
            recorded[task] = (dict(evaluator.get_results()), evaluator.eval['precision'],
                              evaluator.eval['recall'])
            del evaluator
    else:
        sys.meta_path.insert(0, _Blocker())
        from xpaste_mm.evaluation import LVISGroundTruth, evaluate_result_files

        start = time.perf_counter()
        gt = LVISGroundTruth.from_file(gt_path)
        loaded, cpu_start = time.perf_counter(), cpu_seconds()
        tasks = FILE_TASKS[name]
        outputs = evaluate_result_files(gt, results_path, tasks, num_workers=num_workers, progress=False)
        recorded = {t: (dict(o.results), o.precision, o.recall) for t, o in outputs.items()}
        assert 'torch' not in sys.modules and 'mmdet' not in sys.modules
    return loaded - start, time.perf_counter() - loaded, cpu_seconds() - cpu_start, recorded


def _run_mmdet(name: str, gt_path: str, pred_path: str, num_workers: int, cpu_seconds) -> tuple:
    """mmdet's LVISMetric, FastLVISMetric or faster-coco-eval on in-memory predictions."""
    from mmdet.evaluation.metrics import lvis_metric

    import xpaste_mm  # noqa: F401  (registers FastLVISMetric, makes lvis-api work on numpy 2)
    from xpaste_mm.evaluation import ALL_RESULT_KEYS, FastLVISMetric

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
    return loaded - start, done - loaded, cpu_s, recorded


def _child(name: str, gt_path: str, pred_path: str, results_path: str, out_prefix: str,
           num_workers: int) -> None:
    """Run one evaluator (bbox then segm, or boundary); save timings and raw numbers."""
    import resource

    sys.stdout = open(f'{out_prefix}.log', 'w')  # lvis-api prints its summary; keep the console clean

    def cpu_seconds() -> float:  # this process and its reaped children (the forked workers)
        return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF,
                   resource.RUSAGE_CHILDREN) for field in ('ru_utime', 'ru_stime'))

    if name in FILE_EVALUATORS:
        load_s, eval_s, cpu_s, recorded = _run_files(name, gt_path, results_path, num_workers, cpu_seconds)
    else:
        load_s, eval_s, cpu_s, recorded = _run_mmdet(name, gt_path, pred_path, num_workers, cpu_seconds)
    arrays = {f'{t}_{kind}': value for t, (_, precision, recall) in recorded.items()
              for kind, value in (('precision', precision), ('recall', recall))}
    np.savez(f'{out_prefix}.npz', **arrays)
    maxrss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    with open(f'{out_prefix}.json', 'w') as f:
        json.dump(dict(load_s=load_s, eval_s=eval_s, eval_cpu_s=cpu_s, maxrss_gb=maxrss_gb,
                       results={t: {k: float(v) for k, v in r.items()} for t, (r, _, _) in recorded.items()}),
                  f)


# ----------------------------------------------------------------------------- measurement (parent side)
def _memory(proc: psutil.Process) -> int:
    """Proportional set size of a process (bytes): shared pages split among the processes sharing them."""
    try:
        return proc.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return proc.memory_info().rss


def measure(name: str, gt_path: Path, pred_path: Path, results_path: Path, out_dir: Path,
            num_workers: int) -> dict:
    """Run an evaluator in a fresh process; peak = max over time of the summed PSS of its process tree."""
    out_prefix = str(out_dir / f'result_{name}')
    process = multiprocessing.get_context('spawn').Process(
        target=_child, args=(name, str(gt_path), str(pred_path), str(results_path), out_prefix, num_workers))
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


def compare(reference: dict | None, other: dict) -> tuple[float, float]:
    """Largest |difference| over the shared result keys and per-category precision / recall arrays."""
    shared = sorted(set(reference['results']) & set(other['results'])) if reference else []
    if not shared:
        return float('nan'), float('nan')
    key_diff = max(abs(reference['results'][t][k] - other['results'][t][k])
                   for t in shared for k in reference['results'][t])
    array_diff = max(float(np.abs(reference['arrays'][f'{t}_{kind}'] - other['arrays'][f'{t}_{kind}']).max())
                     for t in shared for kind in ('precision', 'recall'))
    return key_diff, array_diff


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=5000)
    parser.add_argument('--cat-info', default=None,
                        help='LVIS lvis_v1_train_cat_info.json for the real long tail (optional)')
    parser.add_argument('--work-dir', default='/tmp/lvis_eval_benchmark', help='data cache and outputs')
    parser.add_argument('--num-workers', type=int, default=2, help='processes of the fast evaluators')
    parser.add_argument('--evaluators', nargs='+', default=['lvis_api', 'fast'], choices=EVALUATORS,
                        help="lvis_api / fast / faster_raw: mmdet's LVISMetric, FastLVISMetric, "
                             "faster-coco-eval's lvis_style mode on in-memory predictions; "
                             'lvis_api_files / files / files_boundary: lvis-api and xpaste-lvis-eval '
                             '(bbox + segm, or boundary) on the result json')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    with_pickle = any(name in MMDET_EVALUATORS for name in args.evaluators)
    # Imported here: importing xpaste_mm registers mmdet, and the standalone evaluator's child process
    # must start without mmdet/torch (this module is re-imported there).
    from xpaste_mm.testing.lvis_eval_data import DETS_PER_IMAGE, NUM_CATEGORIES, generate_lvis_eval_data

    gt_path, results_path, pred_path = generate_lvis_eval_data(args.num_images, args.cat_info, args.seed,
                                                               work_dir, with_pickle)
    with open(gt_path) as f:
        gt = json.load(f)
    num_anns, num_images = len(gt['annotations']), len(gt['images'])
    del gt
    print(f'{num_images} images, {num_anns} annotations, {NUM_CATEGORIES} categories, '
          f'{DETS_PER_IMAGE} detections per image; result json '
          f'{results_path.stat().st_size / 2 ** 30:.2f} GB')
    records = {}
    for name in args.evaluators:
        print(f'running {name} ...', flush=True)
        records[name] = measure(name, gt_path, pred_path, results_path, work_dir, args.num_workers)
    reference = records.get('lvis_api') or records.get('lvis_api_files')
    print(f'\n{"evaluator":<15} {"tasks":<10} {"load s":>7} {"eval s":>7} {"eval cpu s":>10} {"total s":>8} '
          f'{"peak GB":>8} {"main maxrss":>11} {"max key diff":>13} {"max P/R diff":>13}')
    for name, record in records.items():
        diffs = compare(reference, record)
        total_s = record['load_s'] + record['eval_s']
        print(f'{name:<15} {"+".join(record["results"]):<10} {record["load_s"]:7.1f} {record["eval_s"]:7.1f} '
              f'{record["eval_cpu_s"]:10.1f} {total_s:8.1f} {record["peak_gb"]:8.2f} '
              f'{record["maxrss_gb"]:11.2f} '
              f'{diffs[0]:13.2e} {diffs[1]:13.2e}')
    print(f'(machine load average over the last 15 min: {psutil.getloadavg()[2]:.1f} on '
          f'{psutil.cpu_count()} cores; eval s of the *files evaluators includes reading the result json; '
          f'eval cpu s: CPU time of the process tree; peak GB: summed PSS of the process tree; '
          f'main maxrss: peak RSS of the evaluating process alone, GB)')
    for fast_name in ('fast', 'files'):
        if reference is not None and fast_name in records:
            fast = records[fast_name]
            total = {n: r['load_s'] + r['eval_s'] for n, r in (('ref', reference), ('fast', fast))}
            print(f'\n{fast_name} vs lvis-api: speed-up (eval) {reference["eval_s"] / fast["eval_s"]:.1f}x, '
                  f'(load + eval) {total["ref"] / total["fast"]:.1f}x; '
                  f'peak memory {fast["peak_gb"] / reference["peak_gb"]:.2f}x of lvis-api')
    for name, record in records.items():
        print(f'{name}: ' + ', '.join(f'{t}/{k}={v:.4f}' for t, r in record['results'].items()
                                      for k, v in r.items() if k in ('AP', 'APr', 'APc', 'APf')))


if __name__ == '__main__':
    sys.exit(main())
