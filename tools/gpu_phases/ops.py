"""Phase ``mmcv_ops``: mmcv's compiled ``nms`` and ``RoIAlign`` on the device give the CPU results
(which are first checked against torchvision's independent implementations), and their speed."""
from __future__ import annotations

import time

import torch

from .context import CheckFailed, PhaseContext
from .measure import synchronize
from .requirements import require_device, require_mmcv_ops

ROI_TOLERANCE = 1e-4


def _random_boxes(generator: torch.Generator, count: int, size: float) -> torch.Tensor:
    """x1y1x2y2 boxes in pixels inside a ``size`` square, 4 to 40% of the side."""
    xy = torch.rand(count, 2, generator=generator) * size * 0.6
    wh = (0.04 + torch.rand(count, 2, generator=generator) * 0.36) * size
    return torch.cat([xy, xy + wh], dim=1)


def _median_ms(fn, device: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return 1000.0 * sorted(times)[len(times) // 2]


def mmcv_ops(ctx: PhaseContext) -> None:
    require_device(ctx.device)
    require_mmcv_ops(ctx.device)
    import torchvision
    from mmcv.ops import RoIAlign, nms

    device, smoke = ctx.device, ctx.smoke
    generator = torch.Generator().manual_seed(ctx.settings.seed)
    num_boxes, num_rois, channels, side = (500, 64, 8, 32) if smoke else (20000, 1000, 256, 160)
    boxes = _random_boxes(generator, num_boxes, 640.0)
    scores = torch.rand(num_boxes, generator=generator)
    keep_cpu = nms(boxes, scores, iou_threshold=0.5)[1]
    keep_tv = torchvision.ops.nms(boxes, scores, 0.5)
    keep_dev = nms(boxes.to(device), scores.to(device), iou_threshold=0.5)[1].cpu()
    feats = torch.randn(2, channels, side, side, generator=generator)
    rois = torch.cat([torch.randint(0, 2, (num_rois, 1), generator=generator).float(),
                      _random_boxes(generator, num_rois, side * 8.0)], dim=1)
    align = RoIAlign((7, 7), spatial_scale=1 / 8, sampling_ratio=0, aligned=True)
    out_cpu = align(feats, rois)
    out_tv = torchvision.ops.roi_align(feats, rois, (7, 7), spatial_scale=1 / 8, sampling_ratio=0,
                                       aligned=True)
    out_dev = align(feats.to(device), rois.to(device)).cpu()
    nms_ok = torch.equal(keep_cpu, keep_dev)
    roi_diff = float((out_dev - out_cpu).abs().max())
    ref_ok = (set(keep_cpu.tolist()) == set(keep_tv.tolist())
              and float((out_cpu - out_tv).abs().max()) < ROI_TOLERANCE)
    ctx.emit('nms equal to CPU', 'yes' if nms_ok else 'NO', '',
             f'{num_boxes} boxes, IoU 0.5, kept {len(keep_dev)} (CPU {len(keep_cpu)})')
    ctx.emit('RoIAlign max |device - CPU|', roi_diff, '', f'{num_rois} RoIs, 7x7, {channels} ch, aligned')
    ctx.emit('CPU ops equal to torchvision', 'yes' if ref_ok else 'NO', '', 'nms keep set, RoIAlign values')
    boxes_d, scores_d = boxes.to(device), scores.to(device)
    feats_d, rois_d = feats.to(device), rois.to(device)
    repeats = 3 if smoke else 20
    ctx.emit('nms time', _median_ms(lambda: nms(boxes_d, scores_d, iou_threshold=0.5), device, repeats), 'ms',
             f'{num_boxes} boxes, median of {repeats}')
    ctx.emit('RoIAlign time', _median_ms(lambda: align(feats_d, rois_d), device, repeats), 'ms',
             f'{num_rois} RoIs, median of {repeats}')
    if not (nms_ok and roi_diff < ROI_TOLERANCE and ref_ok):
        raise CheckFailed(f'mmcv ops on {device} differ: nms equal {nms_ok}, RoIAlign max diff '
                          f'{roi_diff:.3g} (tolerance {ROI_TOLERANCE}), CPU vs torchvision equal {ref_ok}')
