"""Benchmark the CenterNet2 (X-Paste) detector: seconds per inference forward and per training step, and
peak memory, at a fixed input size, so that regressions show.

The model comes from a config (default: the R50 LVIS config, 1,203 classes, random weights, no
pretrained download). Inputs are random images with ``--num-objects`` random boxes and masks per image.
Federated-loss weights come from ``--cat-info`` (e.g. X-Paste's ``lvis_v1_train_cat_info.json``) or
from synthetic long-tail counts. Inference runs the full test path (256 proposals, 3 cascade stages,
score fusion, NMS, masks for up to 300 detections pasted at input size); a training step is
forward + backward + AdamW step (with ``--amp`` on CUDA: autocast + GradScaler, like AmpOptimWrapper).

Peak memory: CPU = peak resident set size of this process during the phase (sampled every 5 ms);
CUDA = ``torch.cuda.max_memory_allocated`` during the phase.

    python tools/analysis_tools/benchmark_model.py                       # R50, 640x640, CPU
    python tools/analysis_tools/benchmark_model.py --device cuda --batch-size 8 --amp
    python tools/analysis_tools/benchmark_model.py \
        --config configs/xpaste/centernet2_swin-l-in22k-384_fpn_8xb2-90k_lvis-v1.py --size 896
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict

import xpaste_mm  # noqa: F401  (registers the model)
from xpaste_mm.testing import random_detection_batch, write_synthetic_image_counts

DEFAULT_CONFIG = 'configs/xpaste/centernet2_r50-in21k_fpn_8xb8-90k_lvis-v1.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='detector config')
    parser.add_argument('--size', type=int, default=640, help='square input side in pixels')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--num-objects', type=int, default=15, help='GT objects per training image')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    parser.add_argument('--amp', action='store_true', help='mixed precision training step (CUDA only)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed iterations per phase')
    parser.add_argument('--iters', type=int, default=3, help='timed iterations per phase')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = torch default)')
    parser.add_argument('--cat-info', default=None,
                        help='category image counts for the federated loss (lvis_v1_train_cat_info.json); '
                             'synthetic long-tail counts when omitted')
    return parser.parse_args()


class PeakMemory:
    """Peak memory of a phase: CUDA allocator peak, or this process's RSS sampled every 5 ms."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()


def set_stats_file(model_cfg: dict, stats_file: str) -> None:
    for head in model_cfg['roi_head']['bbox_head']:
        head['loss_cls']['stats_file'] = stats_file


def timed(fn, device: torch.device, warmup: int, iters: int) -> tuple[float, int]:
    """Mean seconds per call of ``fn`` after ``warmup`` calls, and the peak memory of the timed calls."""
    for _ in range(warmup):
        fn()
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / iters
    return seconds, memory.peak_bytes


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.amp and device.type != 'cuda':
        raise SystemExit('--amp needs a CUDA device (mmengine AmpOptimWrapper is CUDA-only)')
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    model_cfg = cfg.model.to_dict()
    num_classes = model_cfg['roi_head']['bbox_head'][0]['num_classes']
    with tempfile.TemporaryDirectory() as tmp:
        stats = args.cat_info or str(write_synthetic_image_counts(Path(tmp) / 'cat_info.json',
                                                                  num_classes))
        set_stats_file(model_cfg, stats)
        model_cfg['backbone']['init_cfg'] = None  # random weights: timing does not depend on them
        torch.manual_seed(0)
        model = MODELS.build(ConfigDict(model_cfg)).to(device)
        model.init_weights()
        batch = random_detection_batch(args.batch_size, args.size, args.num_objects, num_classes,
                                       seed=0)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                      weight_decay=1e-4)
        scaler = torch.amp.GradScaler('cuda') if args.amp else None

        def train_step() -> None:
            model.train()
            data = model.data_preprocessor(batch, training=True)
            autocast = torch.autocast('cuda', dtype=torch.float16) if args.amp else contextlib.nullcontext()
            with autocast:
                loss = sum(model(**data, mode='loss').values())
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()

        def inference() -> None:
            model.eval()
            with torch.no_grad():
                data = model.data_preprocessor(batch, training=False)
                model(**data, mode='predict')

        infer_s, infer_mem = timed(inference, device, args.warmup, args.iters)
        train_s, train_mem = timed(train_step, device, args.warmup, args.iters)

    params = sum(p.numel() for p in model.parameters()) / 1e6
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    else:
        name = f'CPU ({torch.get_num_threads()} threads)'
    memory_kind = 'CUDA max allocated' if device.type == 'cuda' else 'process peak RSS'
    print(f'config      {args.config}')
    print(f'device      {name}; input {args.batch_size} x {args.size}x{args.size}; '
          f'{args.num_objects} objects/image; params {params:.1f} M; amp {args.amp}')
    print(f'{"phase":<22}{"s/iter":>10}{"s/image":>10}{"peak memory (MiB)":>20}   ({memory_kind})')
    phases = (('inference forward', infer_s, infer_mem), ('train step', train_s, train_mem))
    for phase, seconds, peak in phases:
        print(f'{phase:<22}{seconds:>10.3f}{seconds / args.batch_size:>10.3f}{peak / 2**20:>20.0f}')


if __name__ == '__main__':
    main()
