"""Argument handling and runner construction behind ``tools/train.py`` and ``tools/test.py``.

The flags and their meaning follow MMDetection 3.x's own tools, so commands and configs move between
them unchanged.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a detector (MMDetection-compatible flags)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or from the latest checkpoint in the '
                             'work dir when no path is given')
    _add_common(parser)
    return parser


def test_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', type=str, help='dump predictions to a pickle file (.pkl)')
    parser.add_argument('--show-dir', help='draw predictions into this folder (under the work dir)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    _add_common(parser)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. optim_wrapper.optimizer.lr=0.01 '
                             '(key=value pairs, lists as key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def _load_config(args: argparse.Namespace) -> Config:
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def _require_checkpoint(parser: argparse.ArgumentParser, path: str, what: str) -> None:
    """Exit with status 2 and usage (``parser.error``) when a local checkpoint path does not exist (URLs
    are left to mmengine)."""
    if '://' not in path and not osp.isfile(path):
        parser.error(f'{what} {path!r} does not exist (expected a .pth checkpoint file)')


def train(argv: list[str] | None = None) -> Runner:
    """Parse ``argv`` like mmdet's ``tools/train.py``, build the runner and train."""
    parser = train_parser()
    args = parser.parse_args(argv)
    cfg = _load_config(args)
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        else:
            if wrapper != 'OptimWrapper':
                raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs "auto_scale_lr.base_batch_size" in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        _require_checkpoint(parser, args.resume, '--resume')
        cfg.resume = True
        cfg.load_from = args.resume
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def test(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` like mmdet's ``tools/test.py``, load the checkpoint and evaluate."""
    parser = test_parser()
    args = parser.parse_args(argv)
    # Bad arguments fail before the runner exists, so nothing (not even <work_dir>/logs) is created.
    _require_checkpoint(parser, args.checkpoint, 'checkpoint')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must be a .pkl/.pickle file, got {args.out}')
    cfg = _load_config(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise RuntimeError('--show-dir needs default_hooks.visualization in the config')
        hook.update(draw=True, test_out_dir=args.show_dir, wait_time=args.wait_time)
    runner = Runner.from_cfg(cfg)
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    return runner.test()
