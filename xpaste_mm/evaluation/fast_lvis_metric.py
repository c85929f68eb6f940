"""``FastLVISMetric``: mmdet's ``LVISMetric`` with the same options and keys, evaluated fast.

Use it wherever ``LVISMetric`` is used::

    val_evaluator = dict(type='FastLVISMetric', ann_file=..., metric=['bbox', 'segm'])

Numbers equal lvis-api's (LVIS's 300 detections per image, federated negative / not-exhaustive
handling, zero-area detections dropped); with faster-coco-eval installed the evaluation runs in its
C++ core, category by category, in ``num_workers`` forked processes. Without it (or with
``backend='lvis_api'``) lvis-api evaluates, after a logged notice.
"""
from __future__ import annotations

import itertools
import logging
import os.path as osp
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from mmdet.registry import METRICS
from mmdet.structures.mask import encode_mask_results
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger, print_log
from terminaltables import AsciiTable

from .lvis_api_backend import evaluate_with_lvis_api, lvis_api_available
from .lvis_detections import PackedRLE
from .lvis_fast_eval import default_num_workers, evaluate_lvis, faster_coco_eval_core
from .lvis_ground_truth import LVISGroundTruth
from .lvis_results import to_detections, to_json_records, write_result_files
from .lvis_summary import LVISEvalOutput, category_ap, format_results
from .proposal_recall import proposal_recalls

ALLOWED_METRICS = ('bbox', 'segm', 'proposal', 'proposal_fast')
BACKENDS = ('auto', 'faster_coco_eval', 'lvis_api')
DEFAULT_ITEMS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf')
DEFAULT_PROPOSAL_ITEMS = ('AR@300', 'ARs@300', 'ARm@300', 'ARl@300')


def _resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    has_faster = faster_coco_eval_core() is not None
    if backend == 'faster_coco_eval' and not has_faster:
        raise RuntimeError("backend='faster_coco_eval' needs faster-coco-eval: pip install faster-coco-eval")
    if backend == 'auto':
        backend = 'faster_coco_eval' if has_faster else 'lvis_api'
        if not has_faster:
            print_log('FastLVISMetric: faster-coco-eval is not installed; falling back to lvis-api '
                      '(same numbers, much slower). pip install faster-coco-eval', logger='current',
                      level=logging.WARNING)
    if backend == 'lvis_api' and not lvis_api_available():
        raise RuntimeError('FastLVISMetric needs faster-coco-eval or lvis-api: pip install faster-coco-eval')
    return backend


@METRICS.register_module()
class FastLVISMetric(BaseMetric):
    """LVIS bbox / segm / proposal metric with lvis-api's numbers and mmdet ``LVISMetric``'s keys.

    Args:
        ann_file: LVIS v1 annotation json (needed: it holds the federated negative and
            not-exhaustive lists and the category frequencies).
        metric: any of ``'bbox'``, ``'segm'``, ``'proposal'``, ``'proposal_fast'``.
        classwise: also report per-category AP (``<name>_precision``) and log a table.
        proposal_nums: proposal numbers of ``'proposal_fast'``.
        iou_thrs: IoU thresholds of ``'proposal_fast'`` (as in ``LVISMetric``, the LVIS AP always
            uses 0.50:0.95).
        metric_items: keys to report, default AP, AP50, AP75, APs, APm, APl, APr, APc, APf (for
            ``'proposal'``: AR@300, ARs@300, ARm@300, ARl@300).
        format_only: only write result files (needs ``outfile_prefix``).
        outfile_prefix: write ``<prefix>.bbox.json`` / ``<prefix>.segm.json`` as mmdet does.
            Without it no files are written.
        backend: ``'auto'`` (faster-coco-eval if installed, else lvis-api), ``'faster_coco_eval'``
            or ``'lvis_api'``.
        num_workers: processes for the faster-coco-eval backend; default: usable cores, at most 8.
        collect_device: device used to gather results across ranks (``'cpu'`` or ``'gpu'``).
        prefix: prefix of the reported keys (default ``'lvis'``).
        file_client_args: deprecated mmdet argument; use ``backend_args``.
        backend_args: mmengine file backend arguments for reading ``ann_file`` and writing results.
    """

    default_prefix: str | None = 'lvis'

    def __init__(self,
                 ann_file: str | None = None,
                 metric: str | list[str] = 'bbox',
                 classwise: bool = False,
                 proposal_nums: Sequence[int] = (100, 300, 1000),
                 iou_thrs: float | Sequence[float] | None = None,
                 metric_items: Sequence[str] | None = None,
                 format_only: bool = False,
                 outfile_prefix: str | None = None,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 file_client_args: dict | None = None,
                 backend_args: dict | None = None,
                 backend: str = 'auto',
                 num_workers: int | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.metrics = list(metric) if isinstance(metric, (list, tuple)) else [metric]
        for name in self.metrics:
            if name not in ALLOWED_METRICS:
                raise KeyError(f'metric should be one of {ALLOWED_METRICS}, but got {name!r}.')
        if file_client_args is not None:
            raise RuntimeError('The `file_client_args` is deprecated, please use `backend_args` instead.')
        if ann_file is None:
            raise ValueError('FastLVISMetric needs ann_file: LVIS evaluation reads neg_category_ids, '
                             'not_exhaustive_category_ids and category frequencies from it.')
        if format_only and outfile_prefix is None:
            raise ValueError('format_only=True needs outfile_prefix (where to write the result files)')
        self.classwise = classwise
        self.proposal_nums = list(proposal_nums)
        if iou_thrs is None:
            iou_thrs = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
        self.iou_thrs = iou_thrs
        self.metric_items = metric_items
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        self.backend_args = backend_args
        self.backend = _resolve_backend(backend)
        self.num_workers = default_num_workers() if num_workers is None else int(num_workers)
        with get_local_path(ann_file, backend_args=backend_args) as local_path:
            self._gt = LVISGroundTruth.from_file(local_path)
            self._lvis_api = None
            if self.backend == 'lvis_api':
                from lvis import LVIS
                self._lvis_api = LVIS(local_path)
        #: Last evaluation per task ('bbox' / 'segm'): unrounded results, precision and recall.
        self.last_eval: dict[str, LVISEvalOutput] = {}

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each image's predictions as numpy arrays; masks as packed RLE (see ``lvis_results``)."""
        for data_sample in data_samples:
            pred = data_sample['pred_instances']
            result = dict(img_id=data_sample['img_id'],
                          bboxes=pred['bboxes'].cpu().numpy(),
                          scores=pred['scores'].cpu().numpy(),
                          labels=pred['labels'].cpu().numpy())
            if 'masks' in pred:
                masks = pred['masks']
                if hasattr(masks, 'detach'):  # binary (n, H, W) tensor; else already RLE dicts
                    masks = encode_mask_results(masks.detach().cpu().numpy())
                result['masks'] = PackedRLE.from_rles(masks)
            if 'mask_scores' in pred:
                result['mask_scores'] = pred['mask_scores'].cpu().numpy()
            self.results.append(result)

    def _evaluate(self, predictions: list[dict], tasks: list[str]) -> dict[str, LVISEvalOutput]:
        if self.backend == 'faster_coco_eval':
            detections = {task: to_detections(predictions, self._gt, task) for task in tasks}
            return evaluate_lvis(self._gt, detections, num_workers=self.num_workers)
        return {task: evaluate_with_lvis_api(self._lvis_api, to_json_records(
            predictions, self._gt.file_category_ids, task), task) for task in tasks}

    def _fast_eval_recall(self, predictions: list[dict]) -> np.ndarray:
        """mmdet's proposal recall against each image's ground-truth boxes (x1y1x2y2)."""
        gt = self._gt
        order = np.lexsort((gt.ann_ids, gt.ann_image))  # by image, then annotation id
        starts = np.searchsorted(gt.ann_image[order], np.arange(len(gt.image_ids) + 1))
        boxes = gt.ann_bbox[order]
        boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1).astype(np.float32)
        images = gt.image_index([p['img_id'] for p in predictions])
        per_image = [boxes[starts[i]:starts[i + 1]] for i in images]
        recalls = proposal_recalls(per_image, [p['bboxes'] for p in predictions], self.proposal_nums,
                                   self.iou_thrs, logger=MMLogger.get_current_instance())
        return recalls.mean(axis=1)

    def _classwise_results(self, output: LVISEvalOutput, logger: MMLogger) -> dict[str, float]:
        gt = self._gt
        table_rows, results = [], {}
        for category_id in gt.file_category_ids:
            index = int(np.searchsorted(gt.category_ids, category_id))
            name = gt.category_names[index]
            ap = category_ap(output.precision, index)
            table_rows.append((name, f'{ap:0.3f}'))
            results[f'{name}_precision'] = round(ap, 3)
        num_columns = min(6, len(table_rows) * 2)
        flat = list(itertools.chain(*table_rows))
        table = [['category', 'AP'] * (num_columns // 2)]
        table += list(itertools.zip_longest(*[flat[i::num_columns] for i in range(num_columns)]))
        logger.info('\n' + AsciiTable(table).table)
        return results

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Metrics from the per-image predictions collected by :meth:`process`."""
        logger: MMLogger = MMLogger.get_current_instance()
        eval_results: OrderedDict = OrderedDict()
        if self.outfile_prefix is not None:
            write_result_files(results, self._gt.file_category_ids, self.outfile_prefix)
            if self.format_only:
                logger.info(f'results are saved in {osp.dirname(self.outfile_prefix)}')
                return eval_results

        tasks = sorted({'bbox' if m == 'proposal' else m for m in self.metrics} & {'bbox', 'segm'})
        empty = sum(len(p['scores']) for p in results) == 0
        self.last_eval = {} if empty or not tasks else self._evaluate(list(results), tasks)
        for metric in self.metrics:
            logger.info(f'Evaluating {metric}...')
            if metric == 'proposal_fast':
                ar = self._fast_eval_recall(results)
                for i, num in enumerate(self.proposal_nums):
                    eval_results[f'AR@{num}'] = ar[i]
                logger.info(''.join(f'\nAR@{num}\t{ar[i]:.4f}' for i, num in enumerate(self.proposal_nums)))
                continue
            if empty:
                logger.info('The testing results of the whole dataset is empty.')
                break
            output = self.last_eval['bbox' if metric == 'proposal' else metric]
            if metric == 'proposal':
                items = self.metric_items or DEFAULT_PROPOSAL_ITEMS
                for key, value in output.results.items():
                    if key in items:
                        eval_results[key] = float(f'{float(value):.3f}')
            else:
                if self.classwise:
                    eval_results.update(self._classwise_results(output, logger))
                items = self.metric_items or DEFAULT_ITEMS
                for key, value in output.results.items():
                    if key in items:
                        eval_results[f'{metric}_{key}'] = float(f'{float(value):.3f}')
            logger.info('\n' + '\n'.join(format_results(output.results)))
        return eval_results

