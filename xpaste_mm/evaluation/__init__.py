"""LVIS evaluation: a framework-free evaluator of result files, and ``FastLVISMetric`` for mmdet.

``FastLVISMetric`` (registered in ``mmdet.registry.METRICS``) is imported on first access, so this
package works without mmdet / mmengine / torch.
"""
from .boundary_iou import DILATION_RATIO, boundary_ap_ious, boundary_width, mask_boundary
from .lvis_detections import MAX_DETS_PER_IMAGE, LVISDetections, PackedRLE, evaluated_detections
from .lvis_fast_eval import IOU_TYPES, evaluate_lvis
from .lvis_file_eval import evaluate_result_files, per_category_ap
from .lvis_ground_truth import LVISGroundTruth
from .lvis_result_files import ResultFileError, read_result_file
from .lvis_summary import ALL_RESULT_KEYS, LVISEvalOutput

__all__ = ['ALL_RESULT_KEYS', 'DILATION_RATIO', 'FastLVISMetric', 'IOU_TYPES', 'LVISDetections',
           'LVISEvalOutput', 'LVISGroundTruth', 'MAX_DETS_PER_IMAGE', 'PackedRLE', 'ResultFileError',
           'boundary_ap_ious', 'boundary_width', 'evaluate_lvis', 'evaluate_result_files',
           'evaluated_detections', 'mask_boundary', 'per_category_ap', 'read_result_file']


def __getattr__(name: str):
    if name == 'FastLVISMetric':  # needs mmdet: imported (and registered) on first use
        from .fast_lvis_metric import FastLVISMetric
        return FastLVISMetric
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
