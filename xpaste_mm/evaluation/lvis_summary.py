"""LVIS evaluation parameters and summary numbers, computed exactly as lvis-api's ``LVISEval`` does.

``precision`` has shape (iou thresholds, recall thresholds, categories, area ranges) and ``recall``
(iou thresholds, categories, area ranges); -1 marks "no ground truth". Categories are ordered by id.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

#: lvis-api's ``Params`` (same expressions, so the thresholds are bit-identical).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = ((0 ** 2, 1e5 ** 2), (0 ** 2, 32 ** 2), (32 ** 2, 96 ** 2), (96 ** 2, 1e5 ** 2))
AREA_LABELS = ('all', 'small', 'medium', 'large')

#: Every key lvis-api's ``LVISEval.results`` holds (300 = LVIS's detections per image).
ALL_RESULT_KEYS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf',
                   'AR@300', 'ARs@300', 'ARm@300', 'ARl@300')


@dataclass
class LVISEvalOutput:
    """Result of one task (``'bbox'`` or ``'segm'``)."""

    iou_type: str
    precision: np.ndarray  # (T, R, K, A)
    recall: np.ndarray  # (T, K, A)
    results: OrderedDict  # key (see ALL_RESULT_KEYS) -> float


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if len(valid) else -1.0


def summarize(precision: np.ndarray, recall: np.ndarray, frequency_groups: list[list[int]],
              max_dets: int = 300) -> OrderedDict:
    """lvis-api's ``LVISEval.summarize``: AP/AR numbers from accumulated precision and recall."""
    def ap(iou_thr=None, area='all', group=None) -> float:
        s = precision
        if iou_thr is not None:
            s = s[np.where(iou_thr == IOU_THRESHOLDS)[0]]
        area_index = [AREA_LABELS.index(area)]
        s = s[:, :, frequency_groups[group], area_index] if group is not None else s[:, :, :, area_index]
        return _mean_valid(s)

    def ar(area='all') -> float:
        return _mean_valid(recall[:, :, [AREA_LABELS.index(area)]])

    results = OrderedDict()
    results['AP'] = ap()
    results['AP50'] = ap(iou_thr=0.50)
    results['AP75'] = ap(iou_thr=0.75)
    results['APs'] = ap(area='small')
    results['APm'] = ap(area='medium')
    results['APl'] = ap(area='large')
    results['APr'] = ap(group=0)
    results['APc'] = ap(group=1)
    results['APf'] = ap(group=2)
    results[f'AR@{max_dets}'] = ar()
    for area in ('small', 'medium', 'large'):
        results[f'AR{area[0]}@{max_dets}'] = ar(area)
    return results


def category_ap(precision: np.ndarray, category_index: int) -> float:
    """AP of one category over all areas (mean of valid precision), NaN without ground truth."""
    values = precision[:, :, category_index, 0]
    values = values[values > -1]
    return float(np.mean(values)) if values.size else float('nan')


def format_results(results: OrderedDict, max_dets: int = 300) -> list[str]:
    """The lines lvis-api's ``LVISEval.print_results`` prints, one per key."""
    template = ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} catIds={:>3s}] = {:0.3f}'
    lines = []
    for key, value in results.items():
        title, kind = ('Average Precision', '(AP)') if 'AP' in key else ('Average Recall', '(AR)')
        if len(key) > 2 and key[2].isdigit():
            iou = f'{float(key[2:]) / 100:0.2f}'
        else:
            iou = f'{IOU_THRESHOLDS[0]:0.2f}:{IOU_THRESHOLDS[-1]:0.2f}'
        group = key[2] if len(key) > 2 and key[2] in 'rcf' else 'all'
        area = key[2] if len(key) > 2 and key[2] in 'sml' else 'all'
        lines.append(template.format(title, kind, iou, area, max_dets, group, value))
    return lines
