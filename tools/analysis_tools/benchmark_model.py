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

``--postprocess`` times the RoI head's post-processing alone on a fixed set of detections (``--dets``
boxes per image of the last cascade stage with fused scores for every class, seeded): class-wise NMS +
top-k and mask pasting of our code, of the code it replaced (mmdet's ``multiclass_nms`` and
``FCNMaskHead`` pasting) and of a re-implementation of detectron2's algorithm written for this benchmark
(``fast_rcnn_inference_single_image`` with torchvision's ``batched_nms``; ``paste_masks_in_image``),
checks that all three give the same detections and masks, and times RoIAlign (mmcv vs torchvision).

    python tools/analysis_tools/benchmark_model.py                       # R50, 640x640, CPU
    python tools/analysis_tools/benchmark_model.py --device cuda --batch-size 8 --amp
    python tools/analysis_tools/benchmark_model.py \
        --config configs/xpaste/centernet2_swin-l-in22k-384_fpn_8xb2-90k_lvis-v1.py --size 896
    python tools/analysis_tools/benchmark_model.py --postprocess --score-thr 0 --threads 1
"""
from __future__ import annotations

import argparse
import contextlib
import math
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
    parser.add_argument('--inference-only', action='store_true', help='skip the training step')
    parser.add_argument('--postprocess', action='store_true',
                        help='only time the post-processing on fixed detections (see the docstring)')
    parser.add_argument('--dets', type=int, default=256, help='--postprocess: final boxes per image')
    parser.add_argument('--score-thr', type=float, default=None,
                        help="detection score threshold (default: the config's test_cfg.rcnn; 0 sends every "
                             'class-box to NMS)')
    parser.add_argument('--image-size', type=int, nargs=2, default=(480, 640), metavar=('H', 'W'),
                        help='--postprocess: image size the masks are pasted into')
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


# ---------------------------------------------------------------------- post-processing only
def fixed_detections(num: int, num_classes: int, height: int, width: int,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Final cascade boxes (num, 4) clustered around num // 4 objects, fused scores (num, C + 1) like
    sqrt(mean sigmoid x proposal score) (a few high classes per object, a long low tail) and 28 x 28
    mask logits (num, 28, 28)."""
    gen = torch.Generator().manual_seed(seed)
    objects = max(num // 4, 1)
    centres = torch.rand(objects, 2, generator=gen) * torch.tensor([width, height])
    sizes = torch.exp(torch.rand(objects, 2, generator=gen) * math.log(400 / 12)) * 12
    which = torch.randint(objects, (num,), generator=gen)
    jitter = 1 + 0.15 * torch.randn(num, 4, generator=gen)
    centre, size = centres[which] * jitter[:, :2].clamp(0.8, 1.2), sizes[which] * jitter[:, 2:].abs()
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    boxes = torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                         boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)
    logits = torch.randn(num, num_classes + 1, generator=gen) * 1.5 - 7
    hot = torch.randint(num_classes, (objects, 3), generator=gen)[which]
    logits.scatter_(1, hot, torch.randn(num, 3, generator=gen) * 2 + 1)
    proposal = torch.rand(num, 1, generator=gen) * 0.9 + 0.05
    scores = (logits.sigmoid() * proposal).sqrt()
    masks = torch.randn(num, 28, 28, generator=gen) * 3
    return boxes, scores, masks


def d2_reference_nms(boxes: torch.Tensor, scores: torch.Tensor, score_thr: float, iou_thr: float,
                     topk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """REFERENCE (written for this benchmark): detectron2's fast_rcnn_inference_single_image
    algorithm: every (box, class) above the threshold, torchvision batched_nms, top-k."""
    from torchvision.ops import batched_nms
    scores = scores[:, :-1]
    mask = scores > score_thr
    inds = mask.nonzero()
    cand_boxes, cand_scores = boxes[inds[:, 0]], scores[mask]
    keep = batched_nms(cand_boxes, cand_scores, inds[:, 1], iou_thr)[:topk]
    return cand_boxes[keep], cand_scores[keep], inds[keep, 1]


def d2_reference_paste(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int,
                       threshold: float = 0.5) -> torch.Tensor:
    """REFERENCE (written for this benchmark): detectron2's paste_masks_in_image algorithm on CPU: one
    mask per chunk, grid_sample over the box's integer bounds only, written by advanced indexing."""
    import torch.nn.functional as F
    out = torch.zeros(len(masks), height, width, dtype=torch.bool)
    for i in range(len(masks)):
        box = boxes[i:i + 1]
        x0_int, y0_int = torch.clamp(box.min(dim=0).values.floor()[:2] - 1, min=0).to(torch.int32)
        x1_int = torch.clamp(box[:, 2].max().ceil() + 1, max=width).to(torch.int32)
        y1_int = torch.clamp(box[:, 3].max().ceil() + 1, max=height).to(torch.int32)
        x0, y0, x1, y1 = torch.split(box, 1, dim=1)
        img_y = torch.arange(y0_int, y1_int, dtype=torch.float32) + 0.5
        img_x = torch.arange(x0_int, x1_int, dtype=torch.float32) + 0.5
        img_y = (img_y - y0) / (y1 - y0) * 2 - 1
        img_x = (img_x - x0) / (x1 - x0) * 2 - 1
        gx = img_x[:, None, :].expand(1, img_y.size(1), img_x.size(1))
        gy = img_y[:, :, None].expand(1, img_y.size(1), img_x.size(1))
        grid = torch.stack([gx, gy], dim=3)
        pasted = F.grid_sample(masks[i:i + 1, None], grid, align_corners=False)[:, 0]
        out[(torch.tensor([i]), slice(y0_int, y1_int), slice(x0_int, x1_int))] = pasted >= threshold
    return out


def best_of(fn, repeat: int) -> tuple[float, object]:
    """Fastest of ``repeat`` calls (seconds) and the last result (filters stalls of a shared machine)."""
    best, result = float('inf'), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def benchmark_postprocess(args: argparse.Namespace, model_cfg: dict) -> None:
    from mmcv.ops import RoIAlign
    from mmdet.models.layers import multiclass_nms
    from torchvision.ops import roi_align as tv_roi_align

    from xpaste_mm.models.roi_heads.postprocess import class_wise_nms, paste_masks

    rcnn = model_cfg['test_cfg']['rcnn']
    score_thr = rcnn['score_thr'] if args.score_thr is None else args.score_thr
    iou_thr, topk = rcnn['nms']['iou_threshold'], rcnn['max_per_img']
    num_classes = model_cfg['roi_head']['bbox_head'][-1]['num_classes']
    height, width = args.image_size
    boxes, scores, mask_logits = fixed_detections(args.dets, num_classes, height, width)
    repeat = max(args.iters, 1)
    with torch.no_grad():
        ours_t, (dets, labels) = best_of(lambda: class_wise_nms(boxes, scores, score_thr, iou_thr, topk),
                                         repeat)
        nms_cfg = ConfigDict(type='nms', iou_threshold=iou_thr)
        old_t, (old_dets, old_labels) = best_of(
            lambda: multiclass_nms(boxes, scores, score_thr, nms_cfg, topk),
            repeat)
        d2_t, (d2_boxes, d2_scores, d2_labels) = best_of(
            lambda: d2_reference_nms(boxes, scores, score_thr, iou_thr, topk), repeat)
        num = int((scores[:, :-1] > score_thr).sum())
        same = (torch.equal(labels, d2_labels) and torch.equal(dets[:, :4], d2_boxes)
                and torch.equal(labels, old_labels))
        print(f'post-processing on fixed detections: {args.dets} boxes x {num_classes} classes, score_thr '
              f'{score_thr} ({num} candidates), NMS {iou_thr}, top {topk}; {torch.get_num_threads()} '
              f'thread(s), fastest of {repeat}')
        print(f'{"":24}{"ours":>10}{"replaced":>10}{"d2 ref.":>10}   (ms)')
        print(f'{"class-wise NMS + top-k":<24}{ours_t * 1e3:>10.1f}{old_t * 1e3:>10.1f}{d2_t * 1e3:>10.1f}   '
              f'{len(dets)} detections, identical to the others: {same}')

        det_boxes = dets[:, :4]
        det_boxes = det_boxes[(det_boxes[:, 2] > det_boxes[:, 0]) & (det_boxes[:, 3] > det_boxes[:, 1])]
        mask_logits = mask_logits[torch.arange(len(det_boxes)) % len(mask_logits)]
        probs = mask_logits.sigmoid()

        def replaced_paste():
            from mmdet.models.roi_heads.mask_heads import FCNMaskHead
            head = FCNMaskHead(num_convs=0, in_channels=1, conv_out_channels=1, num_classes=1,
                               class_agnostic=True)
            meta = dict(ori_shape=(height, width), scale_factor=(1.0, 1.0))
            return head._predict_by_feat_single(mask_logits[:, None], det_boxes.clone(),
                                                labels[:len(det_boxes)], meta,
                                                ConfigDict(mask_thr_binary=0.5), rescale=True)

        ours_t, ours_masks = best_of(lambda: paste_masks(probs, det_boxes, height, width, 0.5), repeat)
        old_t, old_masks = best_of(replaced_paste, repeat)
        d2_t, d2_masks = best_of(lambda: d2_reference_paste(probs, det_boxes, height, width), repeat)
        print(f'{"mask pasting":<24}{ours_t * 1e3:>10.1f}{old_t * 1e3:>10.1f}{d2_t * 1e3:>10.1f}   '
              f'{len(det_boxes)} masks {height}x{width}, pixels differing from replaced / d2: '
              f'{int((ours_masks != old_masks).sum())} / {int((ours_masks != d2_masks).sum())}')

        feat = torch.randn(1, 256, height // 8, width // 8, generator=torch.Generator().manual_seed(1))
        rois = torch.cat([torch.zeros(args.dets, 1), boxes], dim=1)
        mmcv_layer = RoIAlign(7, 1 / 8, sampling_ratio=0, aligned=True)
        mmcv_t, mmcv_out = best_of(lambda: mmcv_layer(feat, rois), repeat)
        tv_t, tv_out = best_of(lambda: tv_roi_align(feat, rois, 7, 1 / 8, 0, aligned=True), repeat)
        print(f'{"RoIAlign 7x7 on P3":<24}{"mmcv":>10}{"torchvision":>12}')
        print(f'{"":<24}{mmcv_t * 1e3:>10.1f}{tv_t * 1e3:>12.1f}   {args.dets} RoIs, max |difference| '
              f'{float((mmcv_out - tv_out).abs().max()):.2e}')


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.amp and device.type != 'cuda':
        raise SystemExit('--amp needs a CUDA device (mmengine AmpOptimWrapper is CUDA-only)')
    register_all_modules(init_default_scope=True)
    model_cfg = Config.fromfile(args.config).model.to_dict()
    if args.postprocess:
        benchmark_postprocess(args, model_cfg)
        return
    num_classes = model_cfg['roi_head']['bbox_head'][0]['num_classes']
    with tempfile.TemporaryDirectory() as tmp:
        stats = args.cat_info or str(write_synthetic_image_counts(Path(tmp) / 'cat_info.json',
                                                                  num_classes))
        set_stats_file(model_cfg, stats)
        if args.score_thr is not None:
            model_cfg['test_cfg']['rcnn']['score_thr'] = args.score_thr
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
        if not args.inference_only:
            train_s, train_mem = timed(train_step, device, args.warmup, args.iters)

    params = sum(p.numel() for p in model.parameters()) / 1e6
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    else:
        name = f'CPU ({torch.get_num_threads()} threads)'
    memory_kind = 'CUDA max allocated' if device.type == 'cuda' else 'process peak RSS'
    print(f'config      {args.config}')
    print(f'device      {name}; input {args.batch_size} x {args.size}x{args.size}; '
          f'{args.num_objects} objects/image; params {params:.1f} M; amp {args.amp}; score_thr '
          f'{model_cfg["test_cfg"]["rcnn"]["score_thr"]}')
    print(f'{"phase":<22}{"s/iter":>10}{"s/image":>10}{"peak memory (MiB)":>20}   ({memory_kind})')
    phases = [('inference forward', infer_s, infer_mem)]
    if not args.inference_only:
        phases.append(('train step', train_s, train_mem))
    for phase, seconds, peak in phases:
        print(f'{phase:<22}{seconds:>10.3f}{seconds / args.batch_size:>10.3f}{peak / 2**20:>20.0f}')


if __name__ == '__main__':
    main()
