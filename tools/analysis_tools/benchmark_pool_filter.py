"""Throughput of the pool builder's filter/crop stage, and the per-image cost of CLIP scoring.

Prints images per second per core for the crop step (read image + mask, largest component with
holes filled, RGBA crop, PNG write) on synthetic 512x512 inputs, with a per-step breakdown and a
comparison against writing the crop with PIL's default PNG compression (what the original script
did). Then times scoring with a tiny open_clip model on the CPU at several batch sizes.

    python tools/analysis_tools/benchmark_pool_filter.py --num-images 300 --workers 1 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pool_builder.crop import CropJob, init_worker, rgba_crop, run_crop_job  # noqa: E402
from pool_builder.imaging import read_image_bgr, read_mask, write_png  # noqa: E402
from xpaste_mm.testing import photo_with_object_mask  # noqa: E402


def make_inputs(folder: Path, count: int, size: int, seed: int = 0) -> list[CropJob]:
    """Crop jobs of textured "photos" with one blurred elliptic object mask each (image + mask PNGs)."""
    rng = np.random.default_rng(seed)
    jobs = []
    for n in range(count):
        image, mask = photo_with_object_mask(rng, size)
        image_path = write_png(folder / 'images' / f'{n:04d}.png', image)
        mask_path = write_png(folder / 'masks' / f'{n:04d}.png', mask)
        jobs.append(CropJob(key=f'c/{n:04d}', category_id=1, image=str(image_path), mask=str(mask_path),
                            output=str(folder / 'pool' / f'{n:04d}.png'), segmenter='bench', score=30.0,
                            area=0.3, source='generated', reuse=False))
    return jobs


def time_serial(jobs: list[CropJob]) -> float:
    """Seconds for the crop jobs in this process with one OpenCV thread."""
    init_worker()
    start = time.perf_counter()
    for job in jobs:
        result = run_crop_job(job)
        if result.error:
            raise RuntimeError(result.error)
    return time.perf_counter() - start


def breakdown(jobs: list[CropJob]) -> dict[str, float]:
    """Mean milliseconds per image of each step, plus PIL default-compression saving."""
    from PIL import Image

    steps = {'read image': [], 'read mask': [], 'component + crop': [], 'write (cv2 PNG level 1)': [],
             'write (original: PIL default PNG, colour kept under alpha 0)': []}
    with tempfile.TemporaryDirectory() as tmp:
        for job in jobs:
            t0 = time.perf_counter()
            image = read_image_bgr(job.image)
            t1 = time.perf_counter()
            mask = read_mask(job.mask)
            t2 = time.perf_counter()
            crop = rgba_crop(image, mask)
            t3 = time.perf_counter()
            write_png(Path(tmp) / 'a.png', crop, rgb=False)
            t4 = time.perf_counter()
            original = crop.copy()
            original[..., :3] = _bbox_pixels(image, mask > 128)
            t4b = time.perf_counter()
            Image.fromarray(cv2.cvtColor(original, cv2.COLOR_BGRA2RGBA)).save(Path(tmp) / 'b.png')
            t5 = time.perf_counter() - (t4b - t4)
            for name, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                steps[name].append(value * 1000)
    return {k: statistics.mean(v) for k, v in steps.items()}


def _bbox_pixels(image: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """The image inside the box of the largest region (what the original kept under alpha 0)."""
    from pool_builder.crop import largest_component_filled

    _, (x, y, w, h) = largest_component_filled(foreground)
    return image[y:y + h, x:x + w]


def time_parallel(jobs: list[CropJob], workers: int) -> float:
    """Seconds for the jobs through the filter stage's process pool (start-up excluded)."""
    from pool_builder.filter import crop_worker_context

    with crop_worker_context().Pool(workers, initializer=init_worker) as pool:
        pool.map(run_crop_job, jobs[:workers])  # warm up: imports in every worker
        start = time.perf_counter()
        results = pool.map(run_crop_job, jobs, chunksize=max(1, len(jobs) // (workers * 8)))
        elapsed = time.perf_counter() - start
    if any(r.error for r in results):
        raise RuntimeError('crop failed in a worker')
    return elapsed


def bench_scoring(batch_sizes: list[int], count: int, size: int, models_dir: Path) -> None:
    import torch

    from pool_builder.score import ClipScorer, composite_on_white
    from pool_builder.testing import build_tiny_open_clip

    torch.set_num_threads(1)
    scorer = ClipScorer(str(build_tiny_open_clip(models_dir / 'tiny-open-clip')), None, 'cpu')
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(count)]
    masks = [np.where(rng.random((size, size)) > 0.5, 255, 0).astype(np.uint8) for _ in range(count)]
    composites = [composite_on_white(i, m)[0] for i, m in zip(images, masks)]
    scorer.score(composites[:2], 'a photo of a cat')  # warm up
    print(f'\nCLIP scoring, tiny open_clip model, CPU, 1 thread, {size}x{size} composites '
          '(per image):')
    for batch in batch_sizes:
        starts = range(0, count, batch)
        start = time.perf_counter()
        pixels = [scorer.preprocess(composites[i:i + batch]) for i in starts]
        prep = (time.perf_counter() - start) / count * 1000
        start = time.perf_counter()
        for x in pixels:
            scorer.score_pixels(x, 'a photo of a cat')
        model = (time.perf_counter() - start) / count * 1000
        print(f'  batch {batch:3d}: preprocessing {prep:5.2f} ms + model {model:5.3f} ms = '
              f'{prep + model:5.2f} ms')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num-images', type=int, default=300)
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--clip-batch-sizes', type=int, nargs='+', default=[1, 8, 32])
    parser.add_argument('--clip-images', type=int, default=64)
    parser.add_argument('--models-dir', help='folder for the tiny model (default: a temporary one)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jobs = make_inputs(folder, args.num_images, args.size)
        print(f'filter/crop stage, {args.num_images} images of {args.size}x{args.size}, '
              f'{os.cpu_count()} cores visible')
        time_serial(jobs[:10])  # warm caches
        for workers in args.workers:
            elapsed = time_serial(jobs) if workers == 1 else time_parallel(jobs, workers)
            rate = args.num_images / elapsed
            print(f'  {workers} process(es): {rate:7.1f} images/s total, {rate / workers:6.1f} images/s/core')
        steps = breakdown(jobs[:100])
        ours = sum(v for k, v in steps.items() if 'original' not in k)
        print('  per-image breakdown (ms): ' + ', '.join(f'{k} {v:.2f}' for k, v in steps.items()))
        original_write = steps['write (original: PIL default PNG, colour kept under alpha 0)']
        original_like = ours - steps['write (cv2 PNG level 1)'] + original_write
        print(f'  serial time per image: ours {ours:.2f} ms ({1000 / ours:.0f}/s); with PIL default PNG '
              f'saving {original_like:.2f} ms ({1000 / original_like:.0f}/s)')
        bench_scoring(args.clip_batch_sizes, args.clip_images, args.size,
                      Path(args.models_dir) if args.models_dir else folder / 'models')


if __name__ == '__main__':
    main()
