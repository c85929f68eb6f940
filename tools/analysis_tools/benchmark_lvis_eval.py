"""Benchmark LVIS evaluation: lvis-api vs FastLVISMetric and the standalone ``xpaste-lvis-eval``.

Synthetic LVIS v1 val-like data at a realistic scale: 1,203 categories with LVIS's long tail (image
counts and r/c/f groups read from ``lvis_v1_train_cat_info.json`` when given, else a synthetic long
tail with LVIS's group sizes), ~6 categories and ~12 polygon instances per image (some crowded
images), neg / not-exhaustive lists, and 300 detections per image (jittered hits, duplicates,
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
import pycocotools.mask as mask_utils
from tqdm import tqdm

NUM_CATEGORIES = 1203
LVIS_GROUP_SIZES = {'r': 337, 'c': 461, 'f': 405}  # LVIS v1 categories per frequency group
DETS_PER_IMAGE = 300
TASKS = ('bbox', 'segm')
MMDET_EVALUATORS = ('lvis_api', 'fast', 'faster_raw')
#: On the result json: lvis-api itself, and the standalone evaluator (bbox + segm, or boundary).
FILE_TASKS = {'files': ('bbox', 'segm'), 'files_boundary': ('boundary',)}
FILE_EVALUATORS = ('lvis_api_files',) + tuple(FILE_TASKS)
EVALUATORS = MMDET_EVALUATORS + FILE_EVALUATORS


# ----------------------------------------------------------------------------- synthetic data
def load_categories(cat_info: str | None, rng: np.random.Generator) -> list[dict]:
    """1,203 LVIS categories (id, name, frequency, image_count): real ones, or a synthetic long tail."""
    if cat_info and Path(cat_info).is_file():
        with open(cat_info, encoding='utf-8') as f:
            info = json.load(f)
        return [dict(id=int(c['id']), name=c['name'], frequency=c['frequency'],
                     image_count=int(c['image_count'])) for c in sorted(info, key=lambda c: c['id'])]
    ranges = {'r': (1, 10), 'c': (10, 100), 'f': (100, 20000)}
    frequencies = [f for f, n in LVIS_GROUP_SIZES.items() for _ in range(n)]
    rng.shuffle(frequencies)
    categories = []
    for index, frequency in enumerate(frequencies):
        low, high = ranges[frequency]
        count = int(np.exp(rng.uniform(np.log(low), np.log(high))))
        categories.append(dict(id=index + 1, name=f'category_{index + 1}', frequency=frequency,
                               image_count=max(1, count)))
    return categories


def _polygon(rng, cx, cy, w, h, num_vertices, jitter):
    """(n, 2*V) ring polygons inscribed in boxes of size w x h around (cx, cy)."""
    t = np.linspace(0, 2 * np.pi, num_vertices, endpoint=False)[None]
    radius = 1 + jitter * rng.uniform(-1, 1, size=(len(cx), num_vertices))
    xs = cx[:, None] + 0.5 * w[:, None] * radius * np.cos(t)
    ys = cy[:, None] + 0.5 * h[:, None] * radius * np.sin(t)
    return np.stack([xs, ys], axis=2).reshape(len(cx), -1)


def _clip_boxes(x1, y1, x2, y2, width, height):
    return (np.clip(x1, 0, width), np.clip(y1, 0, height), np.clip(x2, 0, width), np.clip(y2, 0, height))


def make_image(rng, index, categories, weights, forced_category):
    """One image's ground truth (record, annotations) and its 300 predictions (mmdet format)."""
    num_categories = len(categories)
    height, width = int(rng.choice([375, 427, 480, 512, 640])), 640
    num_present = 1 + rng.poisson(5)
    present = rng.choice(num_categories, size=min(num_present, num_categories), replace=False, p=weights)
    if forced_category is not None:
        present = np.unique(np.r_[present, forced_category])
    counts = 1 + rng.geometric(0.55, size=len(present)) - 1
    if rng.random() < 0.03:  # crowded image: one category with many small instances
        counts[0] = rng.integers(25, 70)
    labels = np.repeat(present, counts)
    n = len(labels)
    side = np.exp(rng.uniform(np.log(8), np.log(0.8 * min(height, width)), size=n))
    aspect = np.exp(rng.uniform(-0.7, 0.7, size=n))
    crowded = counts[0] >= 25
    if crowded:
        side[:counts[0]] = rng.uniform(6, 40, size=counts[0])
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    cx, cy = rng.uniform(0, width, size=n), rng.uniform(0, height, size=n)
    polys = _polygon(rng, cx, cy, w, h, 12, 0.15)
    polys[:, 0::2] = polys[:, 0::2].clip(0, width)
    polys[:, 1::2] = polys[:, 1::2].clip(0, height)
    xs, ys = polys[:, 0::2], polys[:, 1::2]
    areas = 0.5 * np.abs(np.sum(xs * np.roll(ys, -1, 1) - np.roll(xs, -1, 1) * ys, axis=1))
    x1, y1, x2, y2 = xs.min(1), ys.min(1), xs.max(1), ys.max(1)
    image_id = index + 1
    annotations = [dict(image_id=image_id, category_id=categories[int(c)]['id'],
                        segmentation=[np.round(p, 2).tolist()],
                        bbox=[round(float(a), 2), round(float(b), 2), round(float(c_ - a), 2),
                              round(float(d - b), 2)], area=round(float(ar), 2))
                   for c, p, a, b, c_, d, ar in zip(labels, polys, x1, y1, x2, y2, areas)]
    absent = np.setdiff1d(np.arange(num_categories), present)
    negative = rng.choice(absent, size=min(8, len(absent)), replace=False,
                          p=weights[absent] / weights[absent].sum())
    not_exhaustive = present[rng.random(len(present)) < 0.15]
    record = dict(id=image_id, height=height, width=width,
                  coco_url=f'http://images.cocodataset.org/val2017/{image_id:012d}.jpg',
                  neg_category_ids=sorted(categories[int(c)]['id'] for c in negative),
                  not_exhaustive_category_ids=sorted(categories[int(c)]['id'] for c in not_exhaustive))

    # Predictions: hits (with duplicates and label confusions), then background up to 300.
    hit = rng.random(n) < 0.85
    dup = hit & (rng.random(n) < 0.5)
    src = np.r_[np.flatnonzero(hit), np.flatnonzero(dup)][:DETS_PER_IMAGE]
    noise = np.r_[np.full(hit.sum(), 0.08), np.full(dup.sum(), 0.25)][:len(src)]
    bw, bh = (x2 - x1)[src], (y2 - y1)[src]
    jitter = rng.normal(0, 1, size=(len(src), 4)) * noise[:, None] * np.stack([bw, bh, bw, bh], 1)
    px1, py1, px2, py2 = x1[src] + jitter[:, 0], y1[src] + jitter[:, 1], x2[src] + jitter[:, 2], \
        y2[src] + jitter[:, 3]
    plabels = labels[src].copy()
    confused = rng.random(len(src)) < 0.12
    plabels[confused] = rng.choice(np.r_[negative, present], size=confused.sum())
    pscores = np.clip(rng.beta(4, 2, size=len(src)) * np.where(noise > 0.1, 0.6, 1.0), 0.01, 1)
    num_background = DETS_PER_IMAGE - len(src)
    kind = rng.random(num_background)
    blabels = np.where(kind < 0.35, rng.choice(present, size=num_background),
                       np.where(kind < 0.5, rng.choice(negative, size=num_background),
                                rng.choice(num_categories, size=num_background, p=weights)))
    bside = np.exp(rng.uniform(np.log(4), np.log(0.7 * min(height, width)), size=num_background))
    baspect = np.exp(rng.uniform(-0.9, 0.9, size=num_background))
    bcx, bcy = rng.uniform(0, width, size=num_background), rng.uniform(0, height, size=num_background)
    bw_, bh_ = bside * np.sqrt(baspect), bside / np.sqrt(baspect)
    bx1, by1 = bcx - bw_ / 2, bcy - bh_ / 2
    bx2, by2 = bx1 + bw_, by1 + bh_
    zero = rng.random(num_background) < 0.003  # degenerate boxes (zero area)
    bx2[zero] = bx1[zero]
    bscores = rng.uniform(0, 0.55, size=num_background) ** 2
    box = _clip_boxes(np.r_[px1, bx1], np.r_[py1, by1], np.r_[px2, bx2], np.r_[py2, by2], width, height)
    bboxes = np.stack(box, 1).astype(np.float32)
    bboxes[:, 2:] = np.maximum(bboxes[:, 2:], bboxes[:, :2])
    scores = np.r_[pscores, bscores].astype(np.float32)
    order = np.argsort(-scores, kind='stable')
    bboxes, scores, pred_labels = bboxes[order], scores[order], np.r_[plabels, blabels][order]
    bx, by = (bboxes[:, 0] + bboxes[:, 2]) / 2, (bboxes[:, 1] + bboxes[:, 3]) / 2
    mask_polys = _polygon(rng, bx, by, bboxes[:, 2] - bboxes[:, 0], bboxes[:, 3] - bboxes[:, 1], 10, 0.1)
    masks = mask_utils.frPyObjects(mask_polys.astype(np.float64).tolist(), height, width)
    prediction = dict(img_id=image_id, bboxes=bboxes, scores=scores, labels=pred_labels.astype(np.int64),
                      masks=masks)
    return record, annotations, prediction


def _result_records(prediction: dict) -> list[dict]:
    """One image's predictions as lvis-api result records (box and mask in one record, as detectron2)."""
    boxes = prediction['bboxes'].astype(np.float64)
    boxes[:, 2:] -= boxes[:, :2]
    return [dict(image_id=prediction['img_id'], category_id=int(category_id), bbox=box, score=float(score),
                 segmentation=dict(size=rle['size'], counts=rle['counts'].decode()))
            for box, score, category_id, rle in zip(boxes.tolist(), prediction['scores'].tolist(),
                                                    prediction['category_ids'], prediction['masks'])]


def generate(num_images: int, cat_info: str | None, seed: int, out_dir: Path,
             with_pickle: bool) -> tuple[Path, Path, Path]:
    """Write the ground truth json, the result json and (``with_pickle``) the mmdet-format predictions.

    Cached by arguments. The result file is written image by image (never held in memory).
    """
    tag = f'{num_images}_{seed}_{"real" if cat_info and Path(cat_info).is_file() else "synthetic"}'
    gt_path, pred_path = out_dir / f'lvis_gt_{tag}.json', out_dir / f'lvis_preds_{tag}.pkl'
    results_path = out_dir / f'lvis_results_{tag}.json'
    if gt_path.is_file() and results_path.is_file() and (pred_path.is_file() or not with_pickle):
        return gt_path, results_path, pred_path
    rng = np.random.default_rng(seed)
    categories = load_categories(cat_info, rng)
    weights = np.array([c['image_count'] for c in categories], dtype=np.float64)
    weights /= weights.sum()
    # Like LVIS val, (nearly) every category occurs somewhere: each is forced into one random image.
    forced = {}
    for category, image in enumerate(rng.integers(0, num_images, size=len(categories))):
        forced.setdefault(int(image), []).append(category)
    images, annotations, predictions = [], [], []
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(results_path, 'w', encoding='utf-8') as results_file:
        results_file.write('[')
        for index in tqdm(range(num_images), desc='generating synthetic LVIS'):
            extra = forced.get(index)
            record, anns, prediction = make_image(rng, index, categories, weights,
                                                  np.array(extra) if extra else None)
            images.append(record)
            annotations.extend(anns)
            prediction['category_ids'] = [categories[int(label)]['id'] for label in prediction['labels']]
            text = json.dumps(_result_records(prediction))[1:-1]
            results_file.write((', ' if index else '') + text)
            if with_pickle:
                predictions.append(prediction)
        results_file.write(']')
    for ann_id, ann in enumerate(annotations, start=1):
        ann['id'] = ann_id
    gt = dict(info=dict(description='synthetic LVIS v1 val-like benchmark data'), licenses=[],
              images=images, annotations=annotations,
              categories=[{'id': c['id'], 'name': c['name'], 'frequency': c['frequency'],
                           'image_count': c['image_count'], 'synonyms': [c['name']], 'synset': '', 'def': ''}
                          for c in categories])
    with open(gt_path, 'w', encoding='utf-8') as f:
        json.dump(gt, f)
    if with_pickle:
        with open(pred_path, 'wb') as f:
            pickle.dump(predictions, f, protocol=pickle.HIGHEST_PROTOCOL)
    return gt_path, results_path, pred_path


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


_BLOCKER = """
class _Blocker:  # the standalone evaluator runs as in an environment without mmdet / mmengine / torch
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmdet', 'mmengine', 'mmcv', 'torch', 'torchvision'):
            raise ModuleNotFoundError(name)
"""


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
        namespace: dict = {}
        exec(_BLOCKER, namespace)
        sys.meta_path.insert(0, namespace['_Blocker']())
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
    gt_path, results_path, pred_path = generate(args.num_images, args.cat_info, args.seed, work_dir,
                                                with_pickle)
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
