"""Phases on the detector: training steps (AMP on/off, EMA), dataloader throughput, inference.

Training runs what ``IterBasedTrainLoop`` runs per iteration, without a ``Runner`` so the device is
exactly the one asked for: the config's train dataloader (``XPasteCopyPaste`` pasting from the
synthetic pool), ``model.train_step`` with the config's optimizer wrapper (``AmpOptimWrapper`` or
``OptimWrapper``), then the config's ``EMAHook.after_train_iter``.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from .context import CheckFailed, PhaseContext
from .detector import R50_CONFIG, SWINL_CONFIG, load_detector_config, quiet_mmengine_logs, set_loader_workers
from .measure import PeakMemory, synchronize
from .requirements import require_amp, require_device, require_mmcv_ops


def _setup(ctx: PhaseContext) -> None:
    require_device(ctx.device)
    require_mmcv_ops(ctx.device)
    from mmdet.utils import register_all_modules

    import xpaste_mm  # noqa: F401  (registers the plugin)
    register_all_modules(init_default_scope=True)
    quiet_mmengine_logs()
    if torch.device(ctx.device).type == 'cuda':
        torch.cuda.set_device(torch.device(ctx.device))


def _build_model(cfg, device: str, seed: int) -> torch.nn.Module:
    from mmdet.registry import MODELS

    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device)


def _train_size(cfg) -> int:
    crop = next(s for s in cfg.train_dataloader.dataset.dataset.pipeline if s['type'] == 'RandomCrop')
    return int(crop['crop_size'][0])


def train_r50_fp32(ctx: PhaseContext) -> None:
    _train(ctx, R50_CONFIG, swin=False, amp=False, batch=ctx.settings.r50_batch)


def train_r50_amp(ctx: PhaseContext) -> None:
    _train(ctx, R50_CONFIG, swin=False, amp=True, batch=ctx.settings.r50_batch)


def train_swinl_fp32(ctx: PhaseContext) -> None:
    _train(ctx, SWINL_CONFIG, swin=True, amp=False, batch=ctx.settings.swinl_batch)


def train_swinl_amp(ctx: PhaseContext) -> None:
    _train(ctx, SWINL_CONFIG, swin=True, amp=True, batch=ctx.settings.swinl_batch)


def _train(ctx: PhaseContext, config: Path, swin: bool, amp: bool, batch: int) -> None:
    """Warm-up iterations, then timed iterations until ``train_iters`` or the budget is spent."""
    if amp:
        require_amp(ctx.device)
    _setup(ctx)
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import HOOKS
    from mmengine.runner import Runner

    s = ctx.settings
    cfg = load_detector_config(config, ctx.data(), ctx.smoke, swin=swin)
    workers = s.train_workers if s.train_workers >= 0 else ctx.cpu_workers(cfg.train_dataloader.num_workers)
    loader_cfg = set_loader_workers(cfg.train_dataloader, workers, batch or None)
    model = _build_model(cfg, ctx.device, s.seed)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)  # the configs' AmpOptimWrapper, or its fp32 twin
    optim_cfg.type = 'AmpOptimWrapper' if amp else 'OptimWrapper'
    if not amp:
        for key in ('loss_scale', 'dtype'):
            optim_cfg.pop(key, None)
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    ema_cfg = next(copy.deepcopy(h) for h in cfg.custom_hooks if h['type'] == 'EMAHook')
    ema_cfg.pop('priority', None)
    ema_hook = HOOKS.build(ema_cfg)
    loop = SimpleNamespace(model=model, iter=0, epoch=0)  # what the hook reads from the runner
    ema_hook.before_run(loop)
    ema_start = [p.detach().clone() for p in ema_hook.ema_model.module.parameters()]

    iterator = iter(Runner.build_dataloader(loader_cfg, seed=s.seed))
    losses: list[float] = []
    data_wait = 0.0

    def step(index: int) -> None:
        nonlocal data_wait
        started = time.perf_counter()
        data = next(iterator)
        data_wait += time.perf_counter() - started
        log_vars = model.train_step(data, optim_wrapper=optim_wrapper)
        loop.iter = index
        ema_hook.after_train_iter(loop, index, data, log_vars)
        losses.append(log_vars['loss'].item())

    model.train()
    for index in range(s.warmup_iters):
        step(index)
    synchronize(ctx.device)
    data_wait, done = 0.0, 0
    with PeakMemory(ctx.device) as memory:
        started = time.perf_counter()
        while done < s.train_iters and (done == 0 or not ctx.budget.spent()):
            step(s.warmup_iters + done)
            done += 1
        synchronize(ctx.device)
        seconds = time.perf_counter() - started

    batch_size = loader_cfg.batch_size
    model_name = f'{Path(config).name}{" (tiny model)" if ctx.smoke else ""}'
    note = (f'{model_name}; batch {batch_size} at {_train_size(cfg)} px, '
            f'{workers} workers, {done} timed iters after {s.warmup_iters} warm-up; '
            f'{type(optim_wrapper).__name__}')
    ctx.emit('iterations/s', done / seconds, 'it/s', note)
    ctx.emit('images/s', done * batch_size / seconds, 'img/s')
    ctx.emit('data wait', 100.0 * data_wait / seconds, '% of time')
    ctx.emit('peak memory', memory.allocated_mib, 'MiB', memory.kind)
    if memory.kind.startswith('CUDA'):
        ctx.emit('peak memory reserved', memory.reserved_mib, 'MiB', 'CUDA max reserved')
    if amp:
        ctx.emit('loss scale', float(optim_wrapper.loss_scaler.get_scale()), '',
                 'dynamic GradScaler at the end')
    finite = all(math.isfinite(v) for v in losses)
    ctx.emit('loss first/last', f'{losses[0]:.4g} / {losses[-1]:.4g}', '')
    ctx.emit('loss finite', 'yes' if finite else 'NO', '', f'{len(losses)} iterations')
    ema = ema_hook.ema_model
    change = max(float((p.detach() - p0).abs().max()) for p, p0 in zip(ema.module.parameters(), ema_start))
    updated = int(ema.steps) == len(losses) and change > 0
    ctx.emit('EMA updated', 'yes' if updated else 'NO', '',
             f'{int(ema.steps)} updates, momentum {ema.momentum}, max |change| {change:.3g}')
    if not finite:
        raise CheckFailed(f'non-finite training loss: {losses}')
    if not updated:
        raise CheckFailed(f'EMA not updated: {int(ema.steps)} updates for {len(losses)} iterations, '
                          f'max parameter change {change}')


def dataloader(ctx: PhaseContext) -> None:
    """Images/s of the R50 X-Paste train dataloader (full pipeline with pasting, ``--r50-batch``) per
    worker count."""
    require_mmcv_ops('cpu')
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner

    import xpaste_mm  # noqa: F401
    register_all_modules(init_default_scope=True)
    quiet_mmengine_logs()
    s = ctx.settings
    cfg = load_detector_config(R50_CONFIG, ctx.data(), ctx.smoke)
    counts = list(s.loader_workers)
    for position, workers in enumerate(counts):
        budget = ctx.budget.share(1.0 / (len(counts) - position))
        loader_cfg = set_loader_workers(cfg.train_dataloader, workers, s.r50_batch or None)
        started = time.perf_counter()
        iterator = iter(Runner.build_dataloader(loader_cfg, seed=s.seed))
        first = next(iterator)
        first_s = time.perf_counter() - started
        images = pasted = batches = 0
        started = time.perf_counter()
        while batches < s.loader_batches and (batches == 0 or not budget.spent()):
            batch = next(iterator)
            images += len(batch['inputs'])
            pasted += sum(int(d.gt_instances.is_pasted.sum()) for d in batch['data_samples'])
            batches += 1
        seconds = time.perf_counter() - started
        del iterator, first
        ctx.emit(f'images/s, {workers} workers', images / seconds, 'img/s',
                 f'{batches} batches of {loader_cfg.batch_size} at {_train_size(cfg)} px after the first; '
                 f'{pasted / max(images, 1):.1f} pasted instances/image')
        ctx.emit(f'first batch, {workers} workers', first_s, 's',
                 'incl. starting the workers' if workers else '')


def inference(ctx: PhaseContext) -> None:
    """Images/s of the R50 model on synthetic 640x480 images through the config's test pipeline
    (shortest edge 800) with the real post-processing (cascade score fusion, NMS, masks pasted at the
    original size), batch 1 as in the config."""
    _setup(ctx)
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS
    from mmengine.runner import load_checkpoint

    s = ctx.settings
    cfg = load_detector_config(R50_CONFIG, ctx.data(), ctx.smoke)
    model = _build_model(cfg, ctx.device, s.seed)
    if s.checkpoint:
        load_checkpoint(model, s.checkpoint, map_location='cpu')
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    samples = [dataset[i % len(dataset)] for i in range(min(s.infer_images, len(dataset)))]
    detections = 0

    def predict(sample) -> int:
        with torch.no_grad():
            return len(model.test_step(pseudo_collate([sample]))[0].pred_instances)

    for sample in samples[:2]:  # warm-up
        predict(sample)
    synchronize(ctx.device)
    done = 0
    with PeakMemory(ctx.device) as memory:
        started = time.perf_counter()
        while done < s.infer_images and (done == 0 or not ctx.budget.spent()):
            detections += predict(samples[done % len(samples)])
            done += 1
        synchronize(ctx.device)
        seconds = time.perf_counter() - started
    shape = samples[0]['data_samples'].metainfo
    weights = s.checkpoint or 'random weights'
    ctx.emit('images/s', done / seconds, 'img/s',
             f'{done} images {shape["ori_shape"][1]}x{shape["ori_shape"][0]} -> {shape["img_shape"][1]}x'
             f'{shape["img_shape"][0]}, batch 1, fp32, {weights}')
    ctx.emit('latency', 1000.0 * seconds / done, 'ms/img', 'preprocess + forward + post-processing')
    ctx.emit('detections/image', detections / done, '', 'max_per_img 300')
    ctx.emit('peak memory', memory.allocated_mib, 'MiB', memory.kind)
