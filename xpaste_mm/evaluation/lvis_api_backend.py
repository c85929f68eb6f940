"""Reference evaluation with lvis-api's ``LVISEval`` (the fallback when faster-coco-eval is missing)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from .lvis_summary import LVISEvalOutput


def lvis_api_available() -> bool:
    try:
        import lvis  # noqa: F401
    except ImportError:
        return False
    return True


def evaluate_with_lvis_api(lvis_gt, records: Sequence[dict], iou_type: str) -> LVISEvalOutput:
    """Run lvis-api on COCO-style result records (see ``lvis_results.to_json_records``).

    ``lvis_gt`` is an ``lvis.LVIS``. Records must be non-empty (lvis-api cannot load empty results).
    """
    from lvis import LVISEval, LVISResults

    if not records:
        raise ValueError('lvis-api cannot evaluate an empty result list')
    evaluator = LVISEval(lvis_gt, LVISResults(lvis_gt, list(records)), iou_type)
    evaluator.run()
    results = OrderedDict((k, float(v)) for k, v in evaluator.get_results().items())
    return LVISEvalOutput(iou_type, evaluator.eval['precision'], evaluator.eval['recall'], results)
