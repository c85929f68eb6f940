"""``PasteStatsHook``: log what ``XPasteCopyPaste`` pasted and fail loudly when it stops pasting."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from ...datasets.transforms.paste_stats import FIELDS, PASTE_STATS_KEY, sum_records


@HOOKS.register_module()
class PasteStatsHook(Hook):
    """Log, when the ``LoggerHook`` logs (every ``interval`` iterations, and at the end of an epoch), what
    the paste transform did to the images of the iterations since the last log, summed over every
    dataloader worker and every rank.

    Each data sample carries the record ``XPasteCopyPaste`` wrote for its image (metainfo
    ``paste_stats``, see :mod:`xpaste_mm.datasets.transforms.paste_stats`). The hook adds up the
    records of each batch in ``after_train_iter`` and, at the interval, all-reduces the sums across
    ranks and writes these scalars to the message hub (so they appear in the training log line and the
    JSON/TensorBoard logs): ``paste/per_img`` (mean pasted instances per image), ``paste/no_paste``
    (share of images with none), ``paste/per_img_r``/``_c``/``_f`` (by LVIS frequency group, when the
    categories have one), ``paste/occluded`` (instances dropped by occlusion) and ``paste/unreadable``
    (pool crops skipped as unreadable), both totals over the interval, and ``paste/images``.

    The counts travel with the samples they describe, so they are exact for any number of workers,
    persistent workers and start methods, and need no shared memory; the only collective is one
    all-reduce of ``len(FIELDS)`` numbers per interval, made by every rank at the same iteration.

    When no instance was pasted on any rank during ``no_paste_window`` iterations (checked at each
    log, so the window is rounded up to the next log), the hook warns, and raises
    ``RuntimeError`` (stopping training with an error) when ``stop_on_no_paste`` is set. Batches whose
    samples carry no record (the pipeline has no ``XPasteCopyPaste`` or packs with ``PackDetInputs``)
    count as images without pastes, and the warning says so.

    Args:
        interval: iterations between logged statistics; ``None`` uses the ``LoggerHook`` interval.
        no_paste_window: iterations without any pasted instance that trigger the warning (0 = never).
        stop_on_no_paste: raise instead of only warning when the window passes without pastes.
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL), which logs the scalars of this iteration

    def __init__(self, interval: int | None = None, no_paste_window: int = 1000,
                 stop_on_no_paste: bool = False) -> None:
        if interval is not None and interval < 1:
            raise ValueError(f'interval must be >= 1 or None, got {interval}')
        if no_paste_window < 0:
            raise ValueError(f'no_paste_window must be >= 0, got {no_paste_window}')
        self.interval = interval
        self.no_paste_window = int(no_paste_window)
        self.stop_on_no_paste = bool(stop_on_no_paste)
        self._totals = np.zeros(len(FIELDS), dtype=np.float64)
        self._unrecorded = 0
        self._iters_without_paste = 0
        self._last_reduced_iter = 0

    def before_train(self, runner) -> None:
        self._last_reduced_iter = runner.iter  # > 0 after resuming
        if self.interval is None:
            self.interval = next((h.interval for h in runner.hooks if isinstance(h, LoggerHook)), 50)

    def after_train_iter(self, runner, batch_idx: int, data_batch: dict | Sequence | None = None,
                         outputs: dict | None = None) -> None:
        samples = data_batch.get('data_samples', []) if isinstance(data_batch, dict) else []
        records = [s.metainfo[PASTE_STATS_KEY] for s in samples if PASTE_STATS_KEY in s.metainfo]
        self._totals += sum_records(records)
        self._unrecorded += len(samples) - len(records)
        if not self._is_log_step(runner, batch_idx):
            return
        local = torch.from_numpy(np.append(self._totals, self._unrecorded))
        all_reduce(local, op='sum')
        totals = dict(zip(FIELDS, local[:-1].tolist()))
        unrecorded = int(local[-1])
        self._totals[:] = 0
        self._unrecorded = 0
        self._log(runner, totals, unrecorded)
        self._check_window(runner, totals, unrecorded)

    def _is_log_step(self, runner, batch_idx: int) -> bool:
        """The iterations at which ``LoggerHook`` logs (``batch_idx`` is the global iteration in
        iteration-based loops and the iteration within the epoch in epoch-based ones)."""
        if self.every_n_inner_iters(batch_idx, self.interval) or self.is_last_train_iter(runner):
            return True
        loop = getattr(runner, 'train_loop', None)
        return isinstance(loop, EpochBasedTrainLoop) and self.end_of_epoch(runner.train_dataloader, batch_idx)

    def _log(self, runner, totals: dict[str, float], unrecorded: int) -> None:
        images = totals['images'] + unrecorded
        scalars = {'images': images, 'occluded': totals['occluded'], 'unreadable': totals['unreadable']}
        if images:
            scalars.update(per_img=totals['pasted'] / images,
                           no_paste=(totals['no_paste'] + unrecorded) / images)
        if totals['grouped']:
            scalars.update({f'per_img_{g}': totals[f'pasted_{g}'] / totals['grouped'] for g in 'rcf'})
        for name, value in scalars.items():
            runner.message_hub.update_scalar(f'train/paste/{name}', value)

    def _check_window(self, runner, totals: dict[str, float], unrecorded: int) -> None:
        if not self.no_paste_window:
            return
        iterations, self._last_reduced_iter = runner.iter + 1 - self._last_reduced_iter, runner.iter + 1
        if totals['pasted'] > 0:
            self._iters_without_paste = 0
            return
        self._iters_without_paste += iterations
        if self._iters_without_paste < self.no_paste_window:
            return
        self._iters_without_paste = 0
        reasons = []
        if unrecorded:
            reasons.append(f'{unrecorded} image(s) of the last interval carry no paste record: the train '
                           'pipeline has no XPasteCopyPaste or packs with PackDetInputs instead of '
                           'PackXPasteInputs')
        if totals['unreadable']:
            reasons.append(f'{int(totals["unreadable"])} pool crop(s) were unreadable in the last interval: '
                           'check the pool folder (moved? corrupt files?)')
        message = (f'PasteStatsHook: no instance was pasted during the last {self.no_paste_window} '
                   f'iterations (up to iteration {runner.iter + 1}) on any rank. '
                   + ('; '.join(reasons) if reasons else 'Check the pool, the size prior and '
                      "XPasteCopyPaste's prob / max_num_pasted."))
        if self.stop_on_no_paste:
            raise RuntimeError(message + ' (stop_on_no_paste=True stops training)')
        print_log(message, logger='current', level=logging.WARNING)
