"""Benchmark XPasteCopyPaste: paste time per image and the cost of a paper-scale pool index.

    python tools/analysis_tools/benchmark_paste.py [--pool-dir DIR] [--num-crops 10000] [--images 300]
        [--stats-file area_mean_std2.json] [--index-size 1400000] [--workers 4] [--skip-index]
        [--codecs] [--json-size 1400000]

1. Paste step: a 640x640 destination with a few instances, count uniform in 0..19, a pool of
   ``--num-crops`` synthetic RGBA crops on disk (with crop levels, see ``xpaste_mm.datasets.crop_store``),
   one thread. Prints median / p90 ms per image of (a) compositing only (occlusion updates + blending,
   instances already prepared), (b) the whole transform with crops in the decoded-crop cache, (c) the
   whole transform decoding every PNG crop (no cache, levels ignored: a "cold" paste of an old pool),
   (e) the whole transform reading the crop levels (no cache: a cold paste), and (d) an X-Paste-style
   full-image implementation of (a) for comparison; plus the cost per pasted instance (least-squares
   slope of image time over pasted count) and the disk used by PNGs and levels.
2. ``--codecs``: decode + resize ms and bytes per crop of the candidate crop layouts (PNG as stored,
   PNG level 1, WebP lossless, zlib-1 raw BGRA, raw BGRA, the pool's crop levels) on crops of the pool.
3. Pool index: an index of ``--index-size`` instances (paths only, no files) is written once; a
   fresh process loads it and reports load time and resident memory, then ``--workers`` dataloader
   workers sample from it and report their private memory (USS) before and after.
4. ``--json-size``: an X-Paste pool JSON of that many entries is loaded in fresh processes by an
   original-style loader (X-Paste's InstPool: ``json.load``, int keys, one flat list, per-category
   index lists, a path -> category dict) and by ours (``PoolIndex.from_xpaste_json``), side by side:
   seconds and peak memory (VmHWM) growth, 3 interleaved runs each.
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
    parser.add_argument('--levels', type=int, nargs='+', default=None,
                        help='crop level sides written for the pool (default: crop_store.DEFAULT_LEVELS)')
    parser.add_argument('--codecs', action='store_true', help='also compare crop layouts / codecs')
    parser.add_argument('--json-size', type=int, default=0,
                        help='also time loading an X-Paste pool JSON of this many entries (0: skip)')
    return parser.parse_args()


# ---------------------------------------------------------------------- data
def ensure_pool(pool_dir: Path, num_crops: int, crop_size: tuple[int, int],
                levels: list[int] | None = None) -> Path:
    from xpaste_mm.datasets.crop_store import DEFAULT_LEVELS, write_crop_levels
    index = pool_dir / 'pool_index.npz'
    marker = pool_dir / 'benchmark.json'
    levels = list(levels or DEFAULT_LEVELS)
    wanted = dict(num_crops=num_crops, crop_size=list(crop_size), levels=levels)
    if index.is_file() and marker.is_file() and json.loads(marker.read_text()) == wanted:
        return index
    counts = np.full(NUM_LVIS_CATEGORIES, num_crops // NUM_LVIS_CATEGORIES)
    counts[:num_crops - counts.sum()] += 1
    print(f'writing {num_crops} synthetic RGBA crops and their levels to {pool_dir} ...', flush=True)
    make_synthetic_pool(pool_dir, list(range(1, NUM_LVIS_CATEGORIES + 1)), counts.tolist(),
                        size_range=tuple(crop_size), seed=0)
    write_crop_levels(index, levels)
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
    levels = XPasteCopyPaste(**kwargs, cache_size_mb=0)
    if levels.pool.levels is None:
        raise SystemExit(f'{index}: no crop levels (python -m xpaste_mm.datasets.crop_store {index})')
    warm.pool.levels = cold.pool.levels = None  # the PNG paths measured before the levels
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
    levels_t, levels_pasted = run(levels, args.repeat)
    print(f'\n== paste step: 640x640, {args.existing} existing instances, k ~ U{{0..19}}, '
          f'{warm.pool.check.num_usable} crops, {args.images} images, 1 thread, fastest of {args.repeat} '
          'passes per image ((d): 1 pass)')
    print(f'(a) compositing only            {stats_ms(composite_t)}')
    print(f'(b) transform, cached crops     {stats_ms(warm_t)}')
    print(f'(c) transform, decode from disk {stats_ms(cold_t)}')
    print(f'(e) transform, crop levels      {stats_ms(levels_t)}')
    print(f'(d) full-image X-Paste-style (a) {stats_ms(naive_t)}')
    print('per pasted instance (slope):     '
          f'(b) {per_instance_ms(warm_t, pasted):.3f} ms   (c) {per_instance_ms(cold_t, pasted):.3f} ms   '
          f'(e) {per_instance_ms(levels_t, levels_pasted):.3f} ms')
    png_bytes = sum(os.path.getsize(warm.pool.crop_path(r)) for r in range(len(warm.pool.index)))
    from xpaste_mm.datasets.crop_store import levels_paths
    level_bytes = sum(p.stat().st_size for p in levels_paths(index))
    print(f'disk: PNG crops {png_bytes / 2**20:.0f} MiB, crop levels {level_bytes / 2**20:.0f} MiB '
          f'(+{100 * level_bytes / png_bytes:.0f}%), {len(warm.pool.index)} crops')
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


def per_instance_ms(times: np.ndarray, pasted: np.ndarray) -> float:
    """Least-squares slope of image time over pasted-instance count, in ms."""
    return float(np.polyfit(pasted.astype(np.float64), times * 1000, 1)[0])


# ---------------------------------------------------------------------- crop layouts
def benchmark_codecs(index_path: Path, count: int = 300, seed: int = 0) -> None:
    """Decode + resize cost and size per crop of each candidate layout, on ``count`` pool crops
    resized to sizes drawn like the transform's (one thread)."""
    import zlib

    from xpaste_mm.datasets import PoolIndex
    from xpaste_mm.datasets.crop_store import CropLevels
    cv2.setNumThreads(1)
    index = PoolIndex.load(index_path)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(index), size=min(count, len(index)), replace=False)
    files = [Path(index.path(int(r))).read_bytes() for r in rows]
    crops = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_UNCHANGED) for f in files]
    side = np.clip(rng.lognormal(np.log(0.13), 0.6, len(crops)), 10 / 640, 0.5) * 640
    aspect = np.array([c.shape[1] / c.shape[0] for c in crops])
    targets = [(max(int(s * np.sqrt(a)), 1), max(int(s / np.sqrt(a)), 1)) for s, a in zip(side, aspect)]

    def png_decode(blob, crop):
        return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)

    def raw_decode(blob, crop):
        return np.frombuffer(blob, np.uint8).reshape(crop.shape)

    def zlib_decode(blob, crop):
        return np.frombuffer(zlib.decompress(blob), np.uint8).reshape(crop.shape)

    webp = [cv2.imencode('.webp', c, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes() for c in crops]
    layouts = {
        'PNG as stored': (files, png_decode),
        'PNG, zlib level 1': ([cv2.imencode('.png', c, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()
                               for c in crops], png_decode),
        'WebP lossless': (webp, png_decode),
        'zlib-1 raw BGRA': ([zlib.compress(c.tobytes(), 1) for c in crops], zlib_decode),
        'raw BGRA (mmap)': ([c.tobytes() for c in crops], raw_decode),
    }
    print(f'\n== crop layouts: {len(crops)} pool crops, decode + resize to a paste size, 1 thread')
    print(f'{"layout":<32}{"ms/crop":>9}{"KiB/crop":>10}')
    for name, (blobs, decode) in layouts.items():
        start = time.perf_counter()
        for blob, crop, size in zip(blobs, crops, targets):
            cv2.resize(decode(blob, crop), size, interpolation=cv2.INTER_LINEAR)
        ms = (time.perf_counter() - start) / len(crops) * 1000
        print(f'{name:<32}{ms:>9.3f}{sum(map(len, blobs)) / len(blobs) / 1024:>10.1f}')
    store = CropLevels.open(index_path, index)  # the pool's own levels, read as the transform reads them
    if store is None:
        raise SystemExit(f'{index_path}: no usable crop levels')
    for _ in range(2):  # first pass: page the levels in, as a warm pool has them; the second is timed
        start = time.perf_counter()
        fallback = 0
        for row, blob, size in zip(rows.tolist(), files, targets):
            level = store.select(row, *size)
            if level is None:
                fallback += 1
                level = png_decode(blob, None)
            cv2.resize(level, size, interpolation=cv2.INTER_LINEAR)
        ms = (time.perf_counter() - start) / len(crops) * 1000
    stored = store.level_offset[rows] >= 0
    kib = (store.level_size[rows].prod(axis=2) * 4 * stored).sum() / len(rows) / 1024
    print(f'{"crop levels " + str(list(store.levels)):<32}{ms:>9.3f}{kib:>10.1f}   (+ the PNG; {fallback} of '
          f'{len(crops)} pastes larger than every level decode the PNG)')


# ---------------------------------------------------------------------- X-Paste JSON
_JSON_PROBE = r'''
import gc, json, re, sys, time
kind, path = sys.argv[1], sys.argv[2]
if kind == 'ours':
    from xpaste_mm.datasets.pool_index import PoolIndex
elif kind == 'npz':
    from xpaste_mm.datasets import InstancePool


def hwm():
    return int(re.search(r'VmHWM:\s+(\d+)', open('/proc/self/status').read()).group(1)) / 1024


gc.collect()
base = hwm()
start = time.perf_counter()
if kind == 'original':  # X-Paste's InstPool (RGBA): int keys, flat list, per-category lists, path map
    with open(path) as f:
        pool = {int(k): v for k, v in json.load(f).items()}
    flat, per_category, category_of = [], {}, {}
    for cat, entries in pool.items():
        per_category[cat] = list(range(len(flat), len(flat) + len(entries)))
        flat.extend(entries)
        for entry in entries:
            category_of[entry] = cat
elif kind == 'ours':
    index = PoolIndex.from_xpaste_json(path)
else:
    pool = InstancePool.from_file(path, category_ids=range(1, 1204), check_files=0)
print(f'{time.perf_counter() - start:.4f} {hwm() - base:.1f}')
'''


def benchmark_json(args, pool_dir: Path) -> None:
    path = pool_dir / f'xpaste_pool_{args.json_size}.json'
    if not path.is_file():
        rng = np.random.default_rng(0)
        cats = np.sort(rng.integers(0, NUM_LVIS_CATEGORIES, args.json_size))
        pool: dict[str, list[str]] = {}
        for k, c in enumerate(cats.tolist()):
            pool.setdefault(str(c), []).append(f'*/data/xpaste/LVIS_gen_FG/{c:04d}/{k:07d}_u2net.png')
        path.write_text(json.dumps(pool))
    npz = pool_dir / f'xpaste_pool_{args.json_size}.npz'
    if not npz.is_file():
        from xpaste_mm.datasets import PoolIndex
        PoolIndex.from_xpaste_json(path).save(npz)
    results: dict[str, list[tuple[float, float]]] = {'original': [], 'ours': [], 'npz': []}
    for _ in range(3):
        for kind in results:
            target = npz if kind == 'npz' else path
            out = subprocess.run([sys.executable, '-c', _JSON_PROBE, kind, str(target)], check=True,
                                 capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
            seconds, peak = out.stdout.split()[-2:]
            results[kind].append((float(seconds), float(peak)))
    print(f'\n== X-Paste pool JSON, {args.json_size:,} entries, {path.stat().st_size / 2**20:.0f} MiB; '
          'median of 3 fresh processes, interleaved')
    base = np.median([r[0] for r in results['original']])
    labels = {'original': 'original-style (json.load + lists + path map)',
              'ours': 'ours: PoolIndex.from_xpaste_json',
              'npz': 'ours: converted pool_index.npz (InstancePool)'}
    for kind, runs in results.items():
        seconds, peak = np.median([r[0] for r in runs]), np.median([r[1] for r in runs])
        print(f'{labels[kind]:<48} {seconds:8.3f} s  (x{seconds / base:5.2f})   peak +{peak:6.0f} MiB')


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
    index = ensure_pool(pool_dir, args.num_crops, tuple(args.crop_size), args.levels)
    stats = (Path(args.stats_file) if args.stats_file
             else write_synthetic_size_prior(pool_dir / 'synthetic_stats.json', NUM_LVIS_CATEGORIES))
    benchmark_paste(args, index, stats)
    if args.codecs:
        benchmark_codecs(index)
    if not args.skip_index:
        benchmark_index(args, pool_dir)
    if args.json_size:
        benchmark_json(args, pool_dir)


if __name__ == '__main__':
    main()
