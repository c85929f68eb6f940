"""Benchmark XPasteCopyPaste: paste time per image and the cost of a paper-scale pool index.

    python tools/analysis_tools/benchmark_paste.py [--pool-dir DIR] [--num-crops 10000] [--images 300]
        [--stats-file area_mean_std2.json] [--index-size 1400000] [--workers 4] [--skip-index]

1. Paste step: a 640x640 destination with a few instances, count uniform in 0..19, a pool of
   ``--num-crops`` synthetic RGBA crops on disk, one thread. Prints median / p90 ms per image of
   (a) compositing only (occlusion updates + blending, instances already prepared), (b) the whole
   transform with crops in the decoded-crop cache, (c) the whole transform decoding every crop
   from disk, and (d) an X-Paste-style full-image implementation of (a) for comparison.
2. Pool index: an index of ``--index-size`` instances (paths only, no files) is written once; a
   fresh process loads it and reports load time and resident memory, then ``--workers`` dataloader
   workers sample from it and report their private memory (USS) before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from xpaste_mm.testing import (
    make_paths_only_index,
    make_synthetic_pool,
    paste_destination,
    write_synthetic_size_prior,
)

NUM_LVIS_CATEGORIES = 1203


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pool-dir', default=os.path.join(tempfile.gettempdir(), 'xpaste_benchmark_pool'),
                        help='where the synthetic crops and index are written (reused when present)')
    parser.add_argument('--num-crops', type=int, default=10000)
    parser.add_argument('--crop-size', type=int, nargs=2, default=(48, 256), metavar=('MIN', 'MAX'),
                        help='crop side range in pixels')
    parser.add_argument('--images', type=int, default=300, help='destination images per measurement')
    parser.add_argument('--existing', type=int, default=5, help='instances already in the destination')
    parser.add_argument('--repeat', type=int, default=3,
                        help='passes over the images; each image reports its fastest pass (filters out '
                             'stalls caused by other processes on a shared machine)')
    parser.add_argument('--stats-file', default=None,
                        help="X-Paste's area_mean_std2.json or our category_stats.json (default: synthetic)")
    parser.add_argument('--index-size', type=int, default=1_400_000)
    parser.add_argument('--workers', type=int, default=4)
    parser.add_argument('--skip-index', action='store_true', help='only run the paste benchmark')
    return parser.parse_args()


# ---------------------------------------------------------------------- data
def ensure_pool(pool_dir: Path, num_crops: int, crop_size: tuple[int, int]) -> Path:
    index = pool_dir / 'pool_index.npz'
    marker = pool_dir / 'benchmark.json'
    wanted = dict(num_crops=num_crops, crop_size=list(crop_size))
    if index.is_file() and marker.is_file() and json.loads(marker.read_text()) == wanted:
        return index
    counts = np.full(NUM_LVIS_CATEGORIES, num_crops // NUM_LVIS_CATEGORIES)
    counts[:num_crops - counts.sum()] += 1
    print(f'writing {num_crops} synthetic RGBA crops to {pool_dir} ...', flush=True)
    make_synthetic_pool(pool_dir, list(range(1, NUM_LVIS_CATEGORIES + 1)), counts.tolist(),
                        size_range=tuple(crop_size), seed=0)
    marker.write_text(json.dumps(wanted))
    return index


def fresh(results: dict) -> dict:
    """A shallow copy whose arrays the transform may replace (masks are copied by the transform)."""
    return dict(results)


# ---------------------------------------------------------------------- paste timings
def full_image_composite(results: dict, instances) -> None:
    """X-Paste's loop: per paste, full-size canvases, every mask rewritten, every box recomputed."""
    img = results['img'].copy()
    height, width = img.shape[:2]
    masks = results['gt_masks'].masks.astype(bool)
    boxes = results['gt_bboxes'].numpy()
    for inst in instances:
        h, w = inst.mask.shape
        canvas = np.zeros((height + 2 * h, width + 2 * w, 4), np.uint8)
        canvas[inst.y0 + h:inst.y0 + 2 * h, inst.x0 + w:inst.x0 + 2 * w] = np.dstack([inst.bgr, inst.mask])
        canvas = canvas[h:h + height, w:w + width]
        new = canvas[..., 3] > 0
        masks = np.where(new, False, masks)
        x_any, y_any = masks.any(1), masks.any(2)
        new_boxes = np.zeros((len(masks), 4), np.float32)
        for i in range(len(masks)):
            xs, ys = np.flatnonzero(x_any[i]), np.flatnonzero(y_any[i])
            if len(xs) and len(ys):
                new_boxes[i] = [xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]
        keep = (np.abs(new_boxes - boxes) <= 10).all(1) | (masks.sum((1, 2)) > 300)
        img = (img * (1 - new[..., None]) + canvas[..., :3] * new[..., None]).astype(np.uint8)
        ys, xs = np.nonzero(new)
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0]
        masks = np.concatenate([masks[keep], new[None]])
        boxes = np.concatenate([new_boxes[keep], np.array([box], np.float32)])


def stats_ms(samples: list[float]) -> str:
    values = np.asarray(samples) * 1000
    return f'median {np.median(values):6.2f} ms   p90 {np.percentile(values, 90):6.2f} ms   ' \
           f'mean {values.mean():6.2f} ms'


def benchmark_paste(args, index: Path, stats: Path) -> None:
    from xpaste_mm.datasets.transforms import XPasteCopyPaste
    cv2.setNumThreads(1)
    kwargs = dict(pool_file=str(index), stats_file=str(stats), category_ids=range(1, NUM_LVIS_CATEGORIES + 1))
    warm = XPasteCopyPaste(**kwargs, cache_size_mb=4096)
    cold = XPasteCopyPaste(**kwargs, cache_size_mb=0)
    dests = [paste_destination(i, args.existing, num_classes=NUM_LVIS_CATEGORIES)
             for i in range(args.images)]
    plans = [warm.sample_instances(np.random.default_rng(i), (640, 640), dst['gt_bboxes_labels'])
             for i, dst in enumerate(dests)]
    counts = np.array([len(instances) for instances in plans])

    def time_each(function, repeat: int) -> np.ndarray:
        times = np.full(len(dests), np.inf)
        for _ in range(repeat):
            for i, (dst, instances) in enumerate(zip(dests, plans)):
                start = time.perf_counter()
                function(fresh(dst), instances)
                times[i] = min(times[i], time.perf_counter() - start)
        return times

    def run(transform, repeat: int) -> tuple[np.ndarray, np.ndarray]:
        times, pasted = np.full(len(dests), np.inf), np.zeros(len(dests), np.int64)
        for _ in range(repeat):
            for i, dst in enumerate(dests):
                np.random.seed(i)
                start = time.perf_counter()
                out = transform(fresh(dst))
                times[i] = min(times[i], time.perf_counter() - start)
                pasted[i] = int(out['gt_is_pasted'].sum())
        return times, pasted

    time_each(warm.composite, 1)  # warm-up
    composite_t = time_each(warm.composite, args.repeat)
    naive_t = time_each(full_image_composite, 1)
    run(warm, 1)  # fills the cache with every crop this sequence uses
    warm_t, pasted = run(warm, args.repeat)
    cold_t, _ = run(cold, args.repeat)
    print(f'\n== paste step: 640x640, {args.existing} existing instances, k ~ U{{0..19}}, '
          f'{warm.pool.check.num_usable} crops, {args.images} images, 1 thread, fastest of {args.repeat} '
          'passes per image ((d): 1 pass)')
    print(f'(a) compositing only            {stats_ms(composite_t)}')
    print(f'(b) transform, cached crops     {stats_ms(warm_t)}')
    print(f'(c) transform, decode from disk {stats_ms(cold_t)}')
    print(f'(d) full-image X-Paste-style (a) {stats_ms(naive_t)}')
    print('median ms by number of instances:   (b) by pasted count | (a) / (d) by prepared count')
    for low in range(0, 20, 5):
        in_b = (pasted >= low) & (pasted < low + 5)
        in_a = (counts >= low) & (counts < low + 5)
        b_ms = f'{np.median(warm_t[in_b]) * 1000:6.2f}' if in_b.any() else '     -'
        a_ms = (f'{np.median(composite_t[in_a]) * 1000:6.2f} / {np.median(naive_t[in_a]) * 1000:7.2f}'
                if in_a.any() else '-')
        print(f'   {low:2d}-{low + 4:2d}:  {b_ms} ({in_b.sum():3d} images) | {a_ms} ({in_a.sum()} images)')
    cache = warm.pool.cache
    print(f'crop cache: {len(cache)} crops, {cache.used_bytes / 2**20:.0f} MiB, hit rate '
          f'{cache.hits / max(cache.hits + cache.misses, 1):.2f}')


# ---------------------------------------------------------------------- index memory
_INDEX_PROBE = r'''
import gc, os, sys, time
import numpy as np, psutil
from torch.utils.data import DataLoader, Dataset
import xpaste_mm
from xpaste_mm.datasets import InstancePool

proc = psutil.Process()
gc.collect()
before = proc.memory_full_info()
start = time.perf_counter()
pool = InstancePool.from_file(sys.argv[1], category_ids=range(1, 1204), check_files=0)
load_s = time.perf_counter() - start
after = proc.memory_full_info()
print(f'LOAD {load_s:.4f} {(after.rss - before.rss) / 2**20:.1f} {(after.uss - before.uss) / 2**20:.1f}')


class Sampler(Dataset):
    """Per item: draw 19 rows and look up their labels and paths (use_pool) or only draw numbers."""

    def __init__(self, use_pool):
        self.use_pool = use_pool

    def __len__(self):
        return 20000

    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        if self.use_pool:
            rows = pool.sample(rng, 19, 'cas_random')
            work = len([pool.crop_path(r) for r in rows]) + int(pool.label_of_rows(rows)[0])
        else:
            work = int(rng.integers(0, 1203, 19).sum())
        info = psutil.Process(os.getpid()).memory_full_info() if i % 1000 < 8 else None
        return os.getpid(), (info.uss if info else -1), (info.rss if info else -1), work


for kind in ('CONTROL', 'WORKER'):
    loader = DataLoader(Sampler(kind == 'WORKER'), batch_size=None, num_workers=int(sys.argv[2]),
                        multiprocessing_context='fork')
    seen = {}
    for pid, uss, rss, _ in loader:
        if uss >= 0:
            seen.setdefault(pid, []).append((uss, rss))
    for pid, values in seen.items():
        first, last = values[0], values[-1]
        print(f'{kind} {pid} {first[0] / 2**20:.1f} {last[0] / 2**20:.1f} {last[1] / 2**20:.1f}')
print(f'MAIN_RSS {proc.memory_info().rss / 2**20:.1f}')
'''


def benchmark_index(args, pool_dir: Path) -> None:
    path = make_paths_only_index(pool_dir / f'big_index_{args.index_size}.npz', args.index_size,
                                 num_categories=NUM_LVIS_CATEGORIES)
    size_mb = path.stat().st_size / 2**20
    out = subprocess.run([sys.executable, '-c', _INDEX_PROBE, str(path), str(args.workers)], check=True,
                         capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'}).stdout
    print(f'\n== pool index: {args.index_size:,} instances, file {size_mb:.0f} MiB (memory-mapped)')
    for line in out.splitlines():
        fields = line.split()
        if fields[0] == 'LOAD':
            print(f'load {float(fields[1]) * 1000:.1f} ms, resident +{fields[2]} MiB '
                  f'(private +{fields[3]} MiB)')
        elif fields[0] in ('WORKER', 'CONTROL'):
            what = 'pool sampling' if fields[0] == 'WORKER' else 'control, no pool'
            print(f'{what:>16} worker {fields[1]}: private memory (USS) {fields[2]} -> {fields[3]} MiB '
                  f'over ~{20000 // args.workers} items of 19 draws (RSS {fields[4]} MiB)')
        elif fields[0] == 'MAIN_RSS':
            print(f'main process RSS {fields[1]} MiB')


def main() -> None:
    args = parse_args()
    pool_dir = Path(args.pool_dir)
    pool_dir.mkdir(parents=True, exist_ok=True)
    index = ensure_pool(pool_dir, args.num_crops, tuple(args.crop_size))
    stats = (Path(args.stats_file) if args.stats_file
             else write_synthetic_size_prior(pool_dir / 'synthetic_stats.json', NUM_LVIS_CATEGORIES))
    benchmark_paste(args, index, stats)
    if not args.skip_index:
        benchmark_index(args, pool_dir)


if __name__ == '__main__':
    main()
