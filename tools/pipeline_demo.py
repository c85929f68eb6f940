"""The whole X-Paste pipeline, offline, on an embedded default: the driver behind ``tools/run_pipeline.py``.

It lives in ``tools/`` (not in the library) because it drives both packages, ``xpaste_mm`` and
``pool_builder``, and the repository's own tools as subprocesses.

1. synthetic LVIS v1 train/val data (:func:`~xpaste_mm.datasets.make_synthetic_lvis`);
2. pool source images: synthetic objects of every category on plain/textured backgrounds (standing in
   for Stable Diffusion images), or real generation with ``sd_model``;
3. the real ``pool_builder`` stages: ingest (or generate) -> segment -> CLIP score -> filter -> pool
   index, category statistics and the pool inspection report (contact sheets);
4. pasted training samples drawn with pasted instances outlined (``browse_dataset.py``);
5. training of the tiny CenterNet2 + ``XPasteCopyPaste`` config through ``tools/train.py``;
6. evaluation through ``tools/test.py`` (``FastLVISMetric``: box/mask AP, AP_r/c/f) with predictions
   drawn on the validation images;
7. ``summary.md`` linking every result.

Every step writes into ``out_dir`` and is a normal user command, so each can be rerun by hand.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from xpaste_mm.utils.io import atomic_write_text

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / 'configs/xpaste/centernet2_r18-tiny_fpn_600i_synthetic-lvis-xpaste.py'
DATA_DIR = 'data/synthetic_lvis'
POOL_WORK_DIR = 'data/xpaste_pool_synthetic'
METRIC_KEYS = ('bbox_AP', 'bbox_APr', 'bbox_APc', 'bbox_APf', 'segm_AP', 'segm_APr', 'segm_APc',
               'segm_APf')


def default_threads() -> int:
    """torch/OpenMP threads per process: the usable cores not already busy (1-minute load average),
    at least 1 and at most 4.

    On an idle 2-core machine that is 2; with another CPU-bound job running it is 1, because OpenMP
    threads spin-waiting for descheduled peers make every iteration several times slower (iterations
    of 5-9 s instead of ~0.15 s were seen with 2 threads on a busy 2-core machine).
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    busy = round(os.getloadavg()[0]) if hasattr(os, 'getloadavg') else 0
    return max(1, min(4, usable - busy))


@dataclass
class DemoOptions:
    """Sizes and models of a demo run (defaults: the embedded offline demo, under 10 min on 2 cores)."""

    out_dir: Path = Path('outputs/xpaste_demo')
    num_train: int = 48
    num_val: int = 16
    num_categories: int = 8
    objects_per_category: int = 12
    train_iters: int = 600
    device: str = 'cpu'
    seed: int = 0
    clip_model: str | None = None          # None: a tiny open_clip model built locally (random weights)
    clip_pretrained: str | None = None
    segmenters: tuple[str, ...] = ('grabcut',)
    sd_model: str | None = None            # hub id or local path: generate pool images instead
    sd_steps: int = 50
    num_previews: int = 6
    threads: int = field(default_factory=default_threads)  # torch/OpenMP threads per process
    log_interval: int = 10                 # training iterations between console lines
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides) -> DemoOptions:
        """A reduced run for tests (about a minute)."""
        values = dict(num_train=8, num_val=4, objects_per_category=4, train_iters=12, num_previews=2)
        values.update(overrides)
        return cls(**values)


def run_demo(options: DemoOptions) -> Path:
    """Run every step; returns the path of ``summary.md``."""
    out = Path(options.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _pin_threads(options.threads)
    print(f'[demo] {options.threads} torch/OpenMP thread(s) per process (--threads to change)', flush=True)
    steps = (('data', _make_data), ('pool', _build_pool), ('previews', _paste_previews),
             ('train', _train), ('evaluate', _evaluate))
    results: dict = {}
    for name, step in steps:
        started = time.perf_counter()
        print(f'[demo] {name} ...', flush=True)
        results[name] = step(options, out, results)
        options.timings[name] = time.perf_counter() - started
        print(f'[demo] {name} done in {options.timings[name]:.1f} s', flush=True)
    summary = _write_summary(options, out, results)
    _print_metrics(results['evaluate'])
    print(f'[demo] summary: {summary}')
    return summary


def _pin_threads(threads: int) -> None:
    """The in-process stages (pool building) use ``threads`` torch/OpenMP/OpenCV threads."""
    import cv2
    import torch
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


# ----------------------------------------------------------------------------------------- steps
def _make_data(options: DemoOptions, out: Path, results: dict):
    from xpaste_mm.datasets import make_synthetic_lvis
    return make_synthetic_lvis(out / DATA_DIR, num_train=options.num_train, num_val=options.num_val,
                               num_categories=options.num_categories, seed=options.seed)


def _pool_run_config(options: DemoOptions, out: Path, data) -> dict:
    """The pool_builder run config of the demo (a dict, as ``xpaste-pool run`` reads from a file)."""
    from pool_builder.testing import build_tiny_open_clip

    clip_model, clip_pretrained = options.clip_model, options.clip_pretrained
    if clip_model is None:
        clip_model = str(build_tiny_open_clip(out / 'models/tiny-open-clip', seed=options.seed))
    config = dict(
        work_dir=str(out / POOL_WORK_DIR), device=options.device,
        vocabulary=dict(file=str(data.train_ann)),
        segment=dict(segmenters=list(options.segmenters), batch_size=8),
        score=dict(model=clip_model, pretrained=clip_pretrained, batch_size=32),
        # A random tiny CLIP gives meaningless scores, so its bar is opened (tolerance 1e9) and only
        # the area rule filters; with a real CLIP model X-Paste's defaults apply.
        filter=dict(min_clip=21.0, min_area=0.05, max_area=0.95,
                    tolerance=1e9 if options.clip_model is None else 1.0, workers=1),
        stats=dict(ann_file=str(data.train_ann), out='category_stats.json'),
        inspect=dict(min_instances=3, per_sheet=24, out='report'))
    if options.sd_model is None:
        config['ingest'] = dict(root=str(out / 'pool_sources'), source='own')
    else:
        config['generate'] = dict(model=options.sd_model, images_per_category=options.objects_per_category,
                                  num_inference_steps=options.sd_steps, seed=options.seed)
    return config


def _build_pool(options: DemoOptions, out: Path, results: dict):
    from pool_builder.pipeline import run_pipeline
    from pool_builder.sharding import Shard
    from pool_builder.vocabulary import load_vocabulary
    from xpaste_mm.testing import render_object_images

    data = results['data']
    if options.sd_model is None:
        vocabulary = load_vocabulary(data.train_ann)
        render_object_images(out / 'pool_sources', data.class_names, options.objects_per_category,
                             {c.name: c.safe_name for c in vocabulary}, seed=options.seed + 1)
    summaries = run_pipeline(_pool_run_config(options, out, data), shard=Shard(), device=options.device)
    return summaries


# mmengine's console lines worth echoing: training/testing iterations (with loss and ETA) and errors.
_PROGRESS_LINE = re.compile(r'(Iter|Epoch)\((train|val|test)\)|Traceback|Error')
_BRIEF_FIELDS = re.compile(r'(?:Iter|Epoch)\(\w+\)\s*\[\s*\d+/\d+\]'
                           r'|\b(?:eta|time|loss|lvis/bbox_AP|lvis/segm_AP):\s*\S+')
HEARTBEAT_S = 20.0


def _brief(line: str) -> str:
    """The iteration, ETA, time per iteration and total loss (or AP) of an mmengine log line."""
    fields = _BRIEF_FIELDS.findall(line)
    return '  '.join(fields) if fields else line.strip().split(' - ')[-1][:200]


def _tool_env(options: DemoOptions) -> dict[str, str]:
    """The environment of the tool subprocesses: this checkout first, pinned threads, no GPU on 'cpu'.

    mmengine's runner takes the GPU whenever one is visible, so ``device='cpu'`` hides the GPUs.
    """
    threads = str(options.threads)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get('PYTHONPATH', '')]),
               OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONUNBUFFERED='1')
    if options.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    return env


def _run_tool(args: list[str], out: Path, log_name: str, options: DemoOptions) -> str:
    """Run a repository tool with the demo folder as working directory.

    Its whole output goes to ``out/logs/<log_name>``; iteration lines (iteration, loss, ETA) are echoed
    to the console as they come, and a heartbeat repeats the latest one at least every
    ``HEARTBEAT_S`` seconds, so a slow machine is never mistaken for a hang.
    """
    log_path = out / 'logs' / log_name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tool = Path(args[0]).name
    started = time.monotonic()
    state = dict(last_line='started', last_print=started)
    lock = threading.Lock()

    def heartbeat(stop: threading.Event) -> None:
        while not stop.wait(1.0):
            with lock:
                now = time.monotonic()
                if now - state['last_print'] >= HEARTBEAT_S:
                    elapsed = now - started
                    print(f'[demo]   {tool}: still running ({elapsed:.0f} s); last: {state["last_line"]}',
                          flush=True)
                    state['last_print'] = now

    stop = threading.Event()
    beat = threading.Thread(target=heartbeat, args=(stop,), daemon=True)
    with open(log_path, 'w', encoding='utf-8') as log:
        proc = subprocess.Popen([sys.executable, *args], cwd=out, env=_tool_env(options),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        beat.start()
        try:
            for line in proc.stdout:
                log.write(line)
                if _PROGRESS_LINE.search(line):
                    brief = _brief(line)
                    with lock:
                        print(f'[demo]   {tool}: {brief}', flush=True)
                        state.update(last_line=brief, last_print=time.monotonic())
            proc.wait()
        finally:
            stop.set()
            beat.join()
            if proc.poll() is None:
                proc.kill()
    text = log_path.read_text(encoding='utf-8')
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(args[:2])} failed (exit {proc.returncode}); see {log_path}:\n'
                           + text[-3000:])
    return text


def _paste_previews(options: DemoOptions, out: Path, results: dict) -> list[Path]:
    folder = out / 'paste_previews'
    _run_tool([str(REPO_ROOT / 'tools/analysis_tools/browse_dataset.py'), str(DEMO_CONFIG),
               '--output-dir', str(folder), '--num', str(options.num_previews), '--seed',
               str(options.seed)], out, 'browse_dataset.log', options)
    return sorted(folder.glob('*.png'))


def _train(options: DemoOptions, out: Path, results: dict) -> Path:
    work = out / 'work_dir'
    iters = options.train_iters
    _run_tool([str(REPO_ROOT / 'tools/train.py'), str(DEMO_CONFIG), '--work-dir', str(work),
               # Evaluation happens once, in the next step (tools/test.py draws the predictions).
               '--cfg-options', f'train_cfg.max_iters={iters}', 'val_cfg=None', 'val_dataloader=None',
               'val_evaluator=None',
               f'default_hooks.checkpoint.interval={iters}', f'param_scheduler.1.T_max={iters}',
               f'param_scheduler.1.end={iters}', f'param_scheduler.0.end={max(1, iters // 10)}',
               f'randomness.seed={options.seed}',
               f'default_hooks.logger.interval={options.log_interval}',
               f'log_processor.window_size={options.log_interval}'], out, 'train.log', options)
    return work / f'iter_{iters}.pth'


def _evaluate(options: DemoOptions, out: Path, results: dict) -> dict:
    work = out / 'eval'
    _run_tool([str(REPO_ROOT / 'tools/test.py'), str(DEMO_CONFIG), str(results['train']),
               '--work-dir', str(work), '--show-dir', 'predictions'], out, 'test.log', options)
    metrics_file = max(work.glob('*/*.json'), key=lambda p: p.stat().st_mtime)
    metrics = json.loads(metrics_file.read_text())
    predictions = sorted(work.glob('*/predictions/*'))
    return dict(metrics=metrics, metrics_file=metrics_file, predictions=predictions)


# --------------------------------------------------------------------------------------- summary
def _print_metrics(evaluation: dict) -> None:
    metrics = evaluation['metrics']
    print('[demo] LVIS metrics: ' + '  '.join(
        f'{key}={metrics.get(f"lvis/{key}", float("nan")):.4f}' for key in METRIC_KEYS))


def _write_summary(options: DemoOptions, out: Path, results: dict) -> Path:
    def rel(path: Path) -> str:
        return Path(os.path.relpath(path, out)).as_posix()

    pool = results['pool']
    report = pool.get('inspect')
    filter_summary = pool['filter']
    metrics = results['evaluate']['metrics']
    sources = ('synthetic object images' if options.sd_model is None
               else f'generated with {options.sd_model}')
    clip = options.clip_model or 'tiny local model (random weights)'
    lines = ['# X-Paste end-to-end demo', '',
             f'Synthetic LVIS: {options.num_train} train / {options.num_val} val images, '
             f'{options.num_categories} categories; pool sources: {sources}; CLIP: {clip}; '
             f'device: {options.device}.',
             '', '## LVIS metrics (FastLVISMetric)', '', '| metric | value |', '|---|---|']
    lines += [f'| {key} | {metrics.get(f"lvis/{key}", float("nan")):.4f} |' for key in METRIC_KEYS]
    lines += ['', '## Instance pool', '', f'- index: `{rel(filter_summary.index_path)}`',
              f'- {filter_summary}']
    if report is not None:
        lines.append(f'- inspection report: [{rel(report.report)}]({rel(report.report)})')
        lines += [f'![contact sheet {cat}]({rel(path)})'
                  for cat, path in sorted(report.contact_sheets.items())]
    lines += ['', '## Pasted training samples (pasted instances in magenta)', '']
    lines += [f'![paste preview]({rel(p)})' for p in results['previews']]
    lines += ['', '## Predictions on validation images (ground truth left, prediction right)', '']
    lines += [f'![prediction]({rel(p)})' for p in results['evaluate']['predictions'][:8]]
    lines += ['', '## Timings', '', *(f'- {k}: {v:.1f} s' for k, v in options.timings.items()),
              '', f'Logs: `{rel(out / "logs")}`; checkpoint: `{rel(results["train"])}`.', '']
    return atomic_write_text(out / 'summary.md', '\n'.join(lines))
