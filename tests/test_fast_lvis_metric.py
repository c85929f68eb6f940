"""FastLVISMetric against mmdet's LVISMetric / lvis-api on synthetic LVIS data with imperfect predictions."""
from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmengine.logging import MMLogger

import xpaste_mm  # noqa: F401  (registers the metric; lvis-api numpy 2 fix)
from xpaste_mm.datasets import make_synthetic_lvis
from xpaste_mm.evaluation import ALL_RESULT_KEYS, FastLVISMetric, LVISGroundTruth, PackedRLE
from xpaste_mm.evaluation import fast_lvis_metric as fast_lvis_metric_module
from xpaste_mm.evaluation.lvis_detections import top_per_image

lvis_metric_module = pytest.importorskip('mmdet.evaluation.metrics.lvis_metric')
pytest.importorskip('lvis')

TOLERANCE = 1e-9  # the issue asks for 1e-4; the implementation reaches rounding level


# ----------------------------------------------------------------------------- imperfect predictions
def _rle(polygon: list[float], height: int, width: int) -> dict:
    return mask_utils.frPyObjects([polygon], height, width)[0]


def _box_polygon(x1, y1, x2, y2):
    return [x1, y1, x2, y1, x2, y2, x1, y2]


class _ImagePredictions:
    """Collects one image's predictions; boxes are clipped to the image (x1y1x2y2 pixels)."""

    def __init__(self, image: dict):
        self.image = image
        self.boxes, self.scores, self.labels, self.polygons = [], [], [], []

    def add(self, box, score, label, polygon=None):
        width, height = self.image['width'], self.image['height']
        x1, y1, x2, y2 = (float(np.clip(v, 0, lim)) for v, lim in zip(box, (width, height) * 2))
        self.boxes.append([x1, y1, max(x1, x2), max(y1, y2)])
        self.scores.append(score)
        self.labels.append(label)
        inner = (x1 + 1, y1 + 1, max(x1 + 1, x2 - 1), max(y1 + 1, y2 - 1))
        self.polygons.append(polygon or _box_polygon(*inner))

    def to_dict(self, rng) -> dict:
        scores = np.asarray(self.scores, dtype=np.float32)
        scores[rng.random(len(scores)) < 0.2] = 0.5  # ties within and across images
        height, width = self.image['height'], self.image['width']
        return dict(img_id=self.image['id'], bboxes=np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4),
                    scores=scores, labels=np.asarray(self.labels, dtype=np.int64),
                    masks=[_rle(p, height, width) for p in self.polygons],
                    mask_scores=(scores * np.float32(0.9)).astype(np.float32))


def make_predictions(gt: dict, seed: int = 0) -> list[dict]:
    """Per-image predictions (mmdet format, labels in file category order) with the usual mistakes.

    Missed objects, jittered hits, duplicates, label confusions, false positives on negative and on
    not-exhaustive categories, categories never verified for the image, zero-area boxes, tied
    scores, mask scores, and one crowded image with more than 300 detections whose low-scored
    true positives fall under the per-image cap.
    """
    rng = np.random.default_rng(seed)
    label_of = {c['id']: i for i, c in enumerate(gt['categories'])}
    anns_by_image: dict[int, list] = {}
    for ann in gt['annotations']:
        anns_by_image.setdefault(ann['image_id'], []).append(ann)
    predictions = []
    for index, image in enumerate(sorted(gt['images'], key=lambda im: im['id'])):
        height, width = image['height'], image['width']
        out = _ImagePredictions(image)
        for ann in anns_by_image.get(image['id'], []):
            if rng.random() < 0.25:  # missed object
                continue
            x, y, w, h = ann['bbox']
            for spread, score in ((0.06, rng.uniform(0.4, 1.0)), (0.3, rng.uniform(0.05, 0.5))):
                if spread > 0.1 and rng.random() < 0.6:  # duplicates for some objects only
                    continue
                shift = rng.normal(0, spread, 4) * [w, h, w, h]
                label = label_of[ann['category_id']]
                if rng.random() < 0.15:  # label confusion
                    label = int(rng.integers(len(label_of)))
                polygon = (np.array(ann['segmentation'][0]).reshape(-1, 2) + shift[:2]).ravel().tolist()
                box = (x + shift[0], y + shift[1], x + w + shift[2], y + h + shift[3])
                out.add(box, score, label, polygon)
        for category_id in image['neg_category_ids'] + image['not_exhaustive_category_ids']:
            for _ in range(3):  # false positives that count (negative) or are ignored (not exhaustive)
                cx, cy, s = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, 80)
                out.add((cx - s, cy - s / 2, cx + s, cy + s / 2), rng.uniform(0, 0.8), label_of[category_id])
        for _ in range(20):  # mostly categories never verified for the image: not evaluated
            cx, cy, s = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, 80)
            label = int(rng.integers(len(label_of)))
            out.add((cx - s, cy - s / 2, cx + s, cy + s / 2), rng.uniform(0, 0.8), label)
        for category_id in list(label_of)[:2]:  # zero-area boxes with high scores
            out.add((30.0, 30.0, 30.0, 60.0), 0.95, label_of[category_id])
        if index == 0:  # crowded image: 310 confident false positives push its hits under the cap
            for k in range(310):
                category_id = image['neg_category_ids'][k % len(image['neg_category_ids'])]
                out.add((k % 50 * 3, k // 50 * 20, k % 50 * 3 + 12, k // 50 * 20 + 12), 0.99 - k * 1e-4,
                        label_of[category_id])
        predictions.append(out.to_dict(rng))
    return predictions


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def lvis_set(tmp_path_factory):
    """Synthetic LVIS val set: 24 categories (rare/common/frequent thirds), 16 images up to 12 objects."""
    data = make_synthetic_lvis(tmp_path_factory.mktemp('fast_lvis') / 'lvis', num_train=1, num_val=16,
                               num_categories=24, image_size=(160, 200), max_objects=12, seed=3)
    with open(data.val_ann, encoding='utf-8') as f:
        gt = json.load(f)
    return data, gt, make_predictions(gt)


def run_mmdet_lvis_metric(ann_file, predictions, monkeypatch, **kwargs):
    """mmdet's LVISMetric on a copy of the predictions; also returns lvis-api's unrounded numbers."""
    recorded = {}

    class RecordingLVISEval(lvis_metric_module.LVISEval):
        def summarize(self):
            super().summarize()
            recorded[self.params.iou_type] = (dict(self.results), self.eval['precision'], self.eval['recall'])

    monkeypatch.setattr(lvis_metric_module, 'LVISEval', RecordingLVISEval)
    metric = lvis_metric_module.LVISMetric(ann_file=str(ann_file), **kwargs)
    results = [(dict(img_id=p['img_id']), p) for p in copy.deepcopy(predictions)]
    return metric.compute_metrics(results), recorded


@pytest.fixture(scope='module')
def reference(lvis_set):
    """mmdet LVISMetric output (bbox + segm, every key) and lvis-api's raw numbers, computed once."""
    data, _, predictions = lvis_set
    with pytest.MonkeyPatch.context() as monkeypatch:
        return run_mmdet_lvis_metric(data.val_ann, predictions, monkeypatch, metric=['bbox', 'segm'],
                                     metric_items=list(ALL_RESULT_KEYS))


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize('num_workers', [1, 2])
def test_every_key_matches_lvis_api(lvis_set, reference, num_workers):
    data, gt, predictions = lvis_set
    expected, raw = reference
    metric = FastLVISMetric(ann_file=str(data.val_ann), metric=['bbox', 'segm'],
                            metric_items=list(ALL_RESULT_KEYS), num_workers=num_workers)
    assert metric.backend == 'faster_coco_eval'
    result = metric.compute_metrics(copy.deepcopy(predictions))
    assert list(result) == list(expected) and result == expected  # same keys, order and rounded values
    for task in ('bbox', 'segm'):
        raw_results, precision, recall = raw[task]
        ours = metric.last_eval[task]
        assert set(ours.results) == set(raw_results) == set(ALL_RESULT_KEYS)
        for key, value in raw_results.items():
            assert abs(ours.results[key] - value) < TOLERANCE, (task, key, ours.results[key], value)
        np.testing.assert_allclose(ours.precision, precision, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(ours.recall, recall, rtol=0, atol=TOLERANCE)
    # The data exercise what LVIS scores: all frequency groups, imperfect AP.
    assert {c['frequency'] for c in gt['categories']} == {'r', 'c', 'f'}
    for key in ('APr', 'APc', 'APf'):
        assert 0 < metric.last_eval['bbox'].results[key] < 1


def test_classwise_and_proposal_match_lvis_metric(lvis_set, monkeypatch):
    data, _, predictions = lvis_set
    options = dict(metric=['bbox', 'proposal'], classwise=True)
    expected, _ = run_mmdet_lvis_metric(data.val_ann, predictions, monkeypatch, **options)
    result = FastLVISMetric(ann_file=str(data.val_ann), num_workers=1, **options).compute_metrics(
        copy.deepcopy(predictions))
    assert list(result) == list(expected)
    for key, value in expected.items():
        assert result[key] == value or (np.isnan(value) and np.isnan(result[key])), key
    assert 'AR@300' in result and any(k.endswith('_precision') for k in result)


def test_proposal_fast_matches_mmdet_recall(lvis_set):
    """mmdet's own eval_recalls fails on numpy >= 1.24 for ragged images; its _recalls is the oracle."""
    from mmdet.evaluation.functional import bbox_overlaps
    from mmdet.evaluation.functional.recall import _recalls

    data, gt, predictions = lvis_set
    nums, thrs = (10, 100, 300), np.array([0.5, 0.75])
    metric = FastLVISMetric(ann_file=str(data.val_ann), metric='proposal_fast', proposal_nums=nums,
                            iou_thrs=thrs)
    result = metric.compute_metrics(copy.deepcopy(predictions))
    assert list(result) == ['AR@10', 'AR@100', 'AR@300']
    gt_boxes = {im['id']: [] for im in gt['images']}
    for ann in gt['annotations']:
        x, y, w, h = ann['bbox']
        gt_boxes[ann['image_id']].append([x, y, x + w, y + h])
    ious = np.empty(len(predictions), dtype=object)
    for i, p in enumerate(predictions):
        ious[i] = bbox_overlaps(np.array(gt_boxes[p['img_id']], np.float32).reshape(-1, 4), p['bboxes'][:300])
    expected = _recalls(ious, np.array(nums), thrs).mean(axis=1)
    np.testing.assert_allclose([result[k] for k in result], expected, atol=1e-12)
    assert 0 < expected[0] < expected[-1] <= 1


def test_lvis_api_fallback_logs_notice_and_agrees(lvis_set, reference, monkeypatch):
    data, _, predictions = lvis_set
    monkeypatch.setattr(fast_lvis_metric_module, 'faster_coco_eval_core', lambda: None)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        metric = FastLVISMetric(ann_file=str(data.val_ann), metric=['bbox', 'segm'],
                                metric_items=list(ALL_RESULT_KEYS))
    finally:
        logger.removeHandler(handler)
    assert metric.backend == 'lvis_api'
    assert any('falling back to lvis-api' in r.getMessage() for r in records)
    assert metric.compute_metrics(copy.deepcopy(predictions)) == reference[0]
    with pytest.raises(RuntimeError, match='faster-coco-eval'):
        FastLVISMetric(ann_file=str(data.val_ann), backend='faster_coco_eval')


# ----------------------------------------------------------------------------- the two semantic traps
def _single_image_gt(tmp_path, num_gt: int = 1) -> str:
    gt = dict(images=[dict(id=1, height=200, width=200, neg_category_ids=[2],
                           not_exhaustive_category_ids=[])],
              categories=[dict(id=1, name='a', frequency='f'), dict(id=2, name='b', frequency='c')],
              annotations=[dict(id=k + 1, image_id=1, category_id=1, bbox=[10.0 + 40 * k, 10.0, 30.0, 30.0],
                                area=900.0, segmentation=[_box_polygon(10 + 40 * k, 10, 40 + 40 * k, 40)])
                           for k in range(num_gt)])
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(gt))
    return str(path)


def _faster_library_ap(ann_file: str, predictions: list[dict]) -> float:
    """bbox AP from faster-coco-eval's own LVIS mode, fed mmdet's result records."""
    faster = pytest.importorskip('faster_coco_eval')
    from xpaste_mm.evaluation.lvis_results import to_json_records

    gt = faster.COCO(ann_file)
    records = to_json_records(predictions, LVISGroundTruth.from_file(ann_file).file_category_ids, 'bbox')
    evaluator = faster.COCOeval_faster(gt, gt.loadRes(records), 'bbox', lvis_style=True,
                                       print_function=lambda *a: None)
    evaluator.params.maxDets = [300]
    evaluator.run()
    return evaluator.stats_as_dict['AP_all']


def _prediction(boxes, scores, labels):
    return dict(img_id=1, bboxes=np.asarray(boxes, np.float32), scores=np.asarray(scores, np.float32),
                labels=np.asarray(labels, np.int64))


@pytest.mark.parametrize('trap', ['per_image_cap', 'zero_area_box'])
def test_semantic_traps_follow_lvis_api_not_faster_coco_eval(tmp_path, monkeypatch, trap):
    """lvis-api caps 300 detections per IMAGE and drops zero-area boxes; faster-coco-eval alone does not."""
    ann_file = _single_image_gt(tmp_path, num_gt=3)
    hits = [[10.0 + 40 * k, 10.0, 40.0 + 40 * k, 40.0] for k in range(3)]
    if trap == 'per_image_cap':  # 300 confident false positives on the negative category, hits below
        boxes = [[150.0, 150.0, 160.0 + k % 30, 170.0] for k in range(300)] + hits
        prediction = _prediction(boxes, [0.9] * 300 + [0.5] * 3, [1] * 300 + [0] * 3)
    else:  # a zero-width box scored above the hits
        prediction = _prediction([[60.0, 60.0, 60.0, 90.0]] + hits, [0.9, 0.5, 0.5, 0.5], [0] * 4)
    expected, raw = run_mmdet_lvis_metric(ann_file, [prediction], monkeypatch, metric='bbox')
    metric = FastLVISMetric(ann_file=ann_file, metric='bbox', num_workers=1)
    assert metric.compute_metrics([copy.deepcopy(prediction)]) == expected
    assert metric.last_eval['bbox'].results['AP'] == pytest.approx(raw['bbox'][0]['AP'], abs=TOLERANCE)
    lvis_ap = raw['bbox'][0]['AP']
    assert lvis_ap == (0.0 if trap == 'per_image_cap' else 1.0)
    assert abs(_faster_library_ap(ann_file, [prediction]) - lvis_ap) > 0.1  # the library alone differs


# ----------------------------------------------------------------------------- metric plumbing
def test_registered_and_process_packs_masks(lvis_set, reference):
    from mmdet.registry import METRICS

    data, _, predictions = lvis_set
    metric = METRICS.build(dict(type='FastLVISMetric', ann_file=str(data.val_ann), metric=['bbox', 'segm'],
                                metric_items=list(ALL_RESULT_KEYS), num_workers=1))
    metric.dataset_meta = dict(classes=data.class_names)
    for p in predictions:  # as mmengine's Evaluator hands them over: dicts of tensors, binary masks
        masks = torch.from_numpy(mask_utils.decode(p['masks'])).permute(2, 0, 1).bool()
        pred = dict(bboxes=torch.from_numpy(p['bboxes']), scores=torch.from_numpy(p['scores']),
                    labels=torch.from_numpy(p['labels']), masks=masks,
                    mask_scores=torch.from_numpy(p['mask_scores']))
        metric.process({}, [dict(img_id=p['img_id'], ori_shape=masks.shape[1:], pred_instances=pred)])
    assert isinstance(metric.results[0]['masks'], PackedRLE)
    assert metric.evaluate(len(predictions)) == {f'lvis/{k}': v for k, v in reference[0].items()}


def test_format_only_writes_mmdet_result_files(lvis_set, tmp_path):
    data, _, predictions = lvis_set
    prefix = str(tmp_path / 'out' / 'results')
    (tmp_path / 'out').mkdir()
    metric = FastLVISMetric(ann_file=str(data.val_ann), metric=['bbox', 'segm'], format_only=True,
                            outfile_prefix=prefix)
    assert metric.compute_metrics(copy.deepcopy(predictions)) == {}
    mmdet_metric = lvis_metric_module.LVISMetric(ann_file=str(data.val_ann), metric=['bbox', 'segm'])
    mmdet_metric.cat_ids = mmdet_metric._lvis_api.get_cat_ids()
    expected_files = mmdet_metric.results2json(copy.deepcopy(predictions), str(tmp_path / 'mmdet'))
    for task in ('bbox', 'segm'):
        ours = json.loads((tmp_path / 'out' / f'results.{task}.json').read_text())
        assert ours == json.loads(open(expected_files[task]).read())


def test_empty_results_are_reported_like_lvis_metric(lvis_set):
    data, _, _ = lvis_set
    empty = [dict(img_id=1_000_001, bboxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32),
                  labels=np.zeros(0, np.int64))]
    assert FastLVISMetric(ann_file=str(data.val_ann), metric='bbox').compute_metrics(empty) == {}


def test_bad_input_raises_clear_errors(lvis_set, tmp_path):
    data, gt, predictions = lvis_set
    with pytest.raises(ValueError, match='ann_file'):
        FastLVISMetric()
    with pytest.raises(KeyError, match='metric should be one of'):
        FastLVISMetric(ann_file=str(data.val_ann), metric='keypoints')
    with pytest.raises(ValueError, match='outfile_prefix'):
        FastLVISMetric(ann_file=str(data.val_ann), format_only=True)
    metric = FastLVISMetric(ann_file=str(data.val_ann), metric='segm')
    bad = copy.deepcopy(predictions[:1])
    bad[0]['labels'][0] = 999
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 24\)'):
        metric.compute_metrics(bad)
    bad = copy.deepcopy(predictions[:1])
    bad[0]['img_id'] = 123
    with pytest.raises(ValueError, match='not in .*lvis_v1_val.json: \\[123\\]'):
        metric.compute_metrics(bad)
    no_masks = [{k: v for k, v in predictions[0].items() if k != 'masks'}]
    with pytest.raises(ValueError, match="'segm' needs predicted masks"):
        metric.compute_metrics(no_masks)
    broken = copy.deepcopy(gt)
    del broken['images'][0]['neg_category_ids']
    path = tmp_path / 'broken.json'
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="broken.json image .*'neg_category_ids'"):
        FastLVISMetric(ann_file=str(path))


# ----------------------------------------------------------------------------- helpers
def test_per_image_cap_keeps_top_scores_with_ties_in_input_order():
    image = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.2])
    assert top_per_image(image, scores, 2).tolist() == [True, True, False, False, True, True]
    assert top_per_image(image, scores, 3).tolist() == [True, True, True, False, True, True]
    assert top_per_image(np.zeros(0, np.int32), np.zeros(0), 3).tolist() == []
    assert top_per_image(image, scores, 4).all()  # no image over the cap


def test_per_image_cap_equals_a_full_sort():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 30, 2000)
    scores = rng.integers(0, 20, 2000) / 20  # many ties
    cap = 60
    expected = np.zeros(len(scores), bool)
    for i in np.unique(image):  # independent reference: Python's stable sort per image
        rows = sorted(np.flatnonzero(image == i).tolist(), key=lambda r: -scores[r])
        expected[rows[:cap]] = True
    assert 0 < (~expected).sum() and np.array_equal(top_per_image(image, scores, cap), expected)


def test_packed_rle_round_trip():
    rles = [_rle(_box_polygon(1, 1, 9 + k, 7), 12, 20) for k in range(3)]
    packed = PackedRLE.concatenate([PackedRLE.from_rles(rles[:1]), PackedRLE.from_rles(rles[1:])])
    assert len(packed) == 3
    for k, rle in enumerate(rles):
        assert packed.rle(k) == {'size': rle['size'], 'counts': rle['counts']}
        assert mask_utils.area(packed.rle(k)) == mask_utils.area(rle)


@pytest.mark.parametrize('indices', [[0, 1, 2, 3, 4, 5], [0, 2, 5], [1, 3, 4], [5, 0, 3, 3], [4], []])
def test_packed_rle_subset_in_any_order(indices):
    rles = [_rle(_box_polygon(1, 1, 4 + k, 7), 12, 20) for k in range(6)]
    rles[1] = rles[4] = {'size': [0, 0], 'counts': b''}  # empty placeholders, as the reader keeps them
    subset = PackedRLE.from_rles(rles).subset(np.array(indices, dtype=np.int64))
    assert len(subset) == len(indices)
    assert [subset.rle(k) for k in range(len(indices))] == [
        {'size': list(rles[i]['size']), 'counts': rles[i]['counts']} for i in indices]
