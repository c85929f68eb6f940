"""Evaluation metrics registered in mmdet.registry.METRICS."""
from .fast_lvis_metric import FastLVISMetric
from .lvis_detections import MAX_DETS_PER_IMAGE, LVISDetections, PackedRLE, evaluated_detections
from .lvis_fast_eval import evaluate_lvis
from .lvis_ground_truth import LVISGroundTruth
from .lvis_summary import ALL_RESULT_KEYS, LVISEvalOutput

__all__ = ['ALL_RESULT_KEYS', 'FastLVISMetric', 'LVISDetections', 'LVISEvalOutput', 'LVISGroundTruth',
           'MAX_DETS_PER_IMAGE', 'PackedRLE', 'evaluate_lvis', 'evaluated_detections']
