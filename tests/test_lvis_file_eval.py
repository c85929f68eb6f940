"""The standalone LVIS evaluator of result files: lvis-api's numbers, Boundary AP, bad input, no mmdet.

How equality is checked: bbox / segm against lvis-api itself on result records with its traps (cap of
300 per image, zero-area boxes, federated and not-exhaustive rules, tied scores, polygon and
uncompressed-RLE masks). Boundary AP against lvis-api's ``LVISEval`` whose IoU is replaced by a
straightforward full-image implementation of boundary-iou-api's definition (``mask_to_boundary``:
zero-pad by 1 px, ``cv2.erode`` with a 3x3 kernel ``d`` times, boundary = mask - erosion, RLE IoU,
``min(mask IoU, boundary IoU)``) and whose area ranges count ``area >= high`` as outside, as the
reference's LVIS evaluation does.
"""
from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from xpaste_mm.evaluation import (
    ALL_RESULT_KEYS,
    ResultFileError,
    boundary_width,
    evaluate_result_files,
    mask_boundary,
)
from xpaste_mm.evaluation.lvis_gt_segmentations import GTSegmentations
from xpaste_mm.evaluation.lvis_result_files import iter_record_chunks

TOLERANCE = 1e-12


# ----------------------------------------------------------------------------- synthetic data
def _polygon(rng, x, y, w, h) -> list[float]:
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    r = 0.5 * (1 + rng.uniform(-0.15, 0.15, 8))
    return np.stack([x + w * (0.5 + r * np.cos(t)), y + h * (0.5 + r * np.sin(t))], 1).ravel().tolist()


def make_gt(rng, num_images: int = 14, num_categories: int = 9) -> dict:
    """LVIS-like ground truth: r/c/f categories, neg / not-exhaustive lists, areas on range borders."""
    categories = [dict(id=3 * c + 2, name=f'cat{c}', frequency='rcf'[c % 3]) for c in range(num_categories)]
    images, annotations = [], []
    for i in range(num_images):
        height, width = (120, 160) if i % 3 else (96, 128)
        image_id = 50 + 7 * i
        present = rng.choice(num_categories, size=int(rng.integers(1, 4)), replace=False)
        for c in present:
            for _ in range(int(rng.integers(1, 4))):
                w, h = rng.uniform(8, 70), rng.uniform(8, 60)
                x, y = rng.uniform(-5, width - w + 5), rng.uniform(-5, height - h + 5)
                polygon = _polygon(rng, x, y, w, h)
                rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
                area = float(mask_utils.area(rle))
                if rng.random() < 0.15:
                    area = float(rng.choice([32.0 ** 2, 96.0 ** 2]))  # exactly on an area-range border
                annotations.append(dict(id=len(annotations) + 1, image_id=image_id,
                                        category_id=categories[c]['id'], area=area,
                                        bbox=mask_utils.toBbox(rle).tolist(),
                                        segmentation=[polygon]))
        absent = np.setdiff1d(np.arange(num_categories), present)
        negative = rng.choice(absent, size=min(2, len(absent)), replace=False)
        images.append(dict(id=image_id, height=height, width=width,
                           neg_category_ids=sorted(categories[c]['id'] for c in negative),
                           not_exhaustive_category_ids=[categories[c]['id'] for c in present[:1]]
                           if rng.random() < 0.4 else []))
    return dict(images=images, annotations=annotations, categories=categories)


def _segmentation(rng, polygon, height, width):
    """The same mask as compressed RLE (mostly), polygons or uncompressed RLE."""
    kind = rng.random()
    if kind < 0.15:
        return [polygon]
    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
    if kind < 0.25:
        runs = mask_utils.decode(rle)
        flat = runs.ravel(order='F')
        change = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]]))
        return dict(size=[height, width], counts=np.diff(np.r_[0, change]).tolist())
    return dict(size=[height, width], counts=rle['counts'].decode())


def make_results(gt: dict, rng) -> list[dict]:
    """Result records with lvis-api's traps; every record carries a box and a mask."""
    images = {im['id']: im for im in gt['images']}
    category_ids = [c['id'] for c in gt['categories']]
    records = []

    def add(image, category_id, box, score, polygon=None):
        height, width = image['height'], image['width']
        x, y, w, h = box
        polygon = polygon or [x + 1, y + 1, x + w - 1, y + 1, x + w - 1, y + h - 1, x + 1, y + h - 1]
        records.append(dict(image_id=image['id'], category_id=category_id, bbox=[float(v) for v in box],
                            score=float(round(score, 1)),  # coarse scores: many ties
                            segmentation=_segmentation(rng, polygon, height, width)))

    for ann in gt['annotations']:
        image = images[ann['image_id']]
        for spread in (0.05, 0.25)[:1 + int(rng.random() < 0.4)]:
            if rng.random() < 0.2:
                continue
            shift = rng.normal(0, spread, 4) * np.r_[ann['bbox'][2:], ann['bbox'][2:]]
            category = ann['category_id'] if rng.random() > 0.15 else int(rng.choice(category_ids))
            polygon = (np.array(ann['segmentation'][0]).reshape(-1, 2) + shift[:2]).ravel().tolist()
            box = [ann['bbox'][0] + shift[0], ann['bbox'][1] + shift[1],
                   max(1.0, ann['bbox'][2] + shift[2]), max(1.0, ann['bbox'][3] + shift[3])]
            add(image, category, box, rng.uniform(0.2, 1.0), polygon)
    for image in gt['images']:
        unverified = category_ids[:3]  # mostly neither annotated nor negative: not evaluated
        for category_id in image['neg_category_ids'] + image['not_exhaustive_category_ids'] + unverified:
            x, y = rng.uniform(0, image['width'] - 40), rng.uniform(0, image['height'] - 40)
            add(image, category_id, [x, y, 32.0, 32.0], rng.uniform(0, 0.9))  # area exactly 32 ** 2
        add(image, category_ids[0], [10.0, 10.0, 0.0, 20.0], 0.95)  # zero-area box
    crowded = gt['images'][0]
    for k in range(310):  # more than 300 detections: the lowest scored ones are dropped
        negatives = crowded['neg_category_ids']
        category_id = negatives[k % len(negatives)] if negatives else category_ids[0]
        add(crowded, category_id, [k % 20 * 6.0, k // 20 * 6.0, 9.0, 9.0], 0.99 - k * 1e-3)
    order = rng.permutation(len(records))
    return [records[i] for i in order]


@pytest.fixture(scope='module')
def lvis_files(tmp_path_factory):
    rng = np.random.default_rng(7)
    gt = make_gt(rng)
    results = make_results(gt, rng)
    root = tmp_path_factory.mktemp('lvis_file_eval')
    gt_path, results_path = root / 'gt.json', root / 'results.json'
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    return gt, results, gt_path, results_path


# ----------------------------------------------------------------------------- reference implementations
def reference_boundary(mask: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """boundary-iou-api's ``mask_to_boundary`` definition on the full image."""
    h, w = mask.shape
    dilation = max(1, int(round(ratio * np.sqrt(h ** 2 + w ** 2))))
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)[1:h + 1, 1:w + 1]
    return mask - eroded


def _lvis_api():
    lvis = pytest.importorskip('lvis')
    from xpaste_mm.compat.lvis_numpy import patch_lvis_for_numpy2
    patch_lvis_for_numpy2()
    return lvis


def lvis_api_results(gt_path, records: list[dict], iou_type: str) -> dict:
    lvis = _lvis_api()
    gt = lvis.LVIS(str(gt_path))
    evaluator = lvis.LVISEval(gt, lvis.LVISResults(gt, copy.deepcopy(records)), iou_type)
    evaluator.run()
    return dict(evaluator.get_results())


def reference_boundary_ap(gt_path, records: list[dict]) -> dict:
    """lvis-api's LVISEval with boundary-iou-api's IoU and area-range rule."""
    lvis = _lvis_api()

    def boundary_rle(rle):
        return mask_utils.encode(np.asfortranarray(reference_boundary(mask_utils.decode(rle))))

    class BoundaryEval(lvis.LVISEval):
        def compute_iou(self, img_id, cat_id):
            gt, dt = self._get_gt_dt(img_id, cat_id)
            if not gt and not dt:
                return []
            dt = [dt[i] for i in np.argsort([-d['score'] for d in dt], kind='mergesort')]
            crowd = [0] * len(gt)
            gt_masks, dt_masks = [g['segmentation'] for g in gt], [d['segmentation'] for d in dt]
            mask_ious = mask_utils.iou(dt_masks, gt_masks, crowd)
            if not gt or not dt:
                return mask_ious
            boundary_ious = mask_utils.iou([boundary_rle(m) for m in dt_masks],
                                           [boundary_rle(m) for m in gt_masks], crowd)
            return np.minimum(mask_ious, boundary_ious)

    gt = lvis.LVIS(str(gt_path))
    evaluator = BoundaryEval(gt, lvis.LVISResults(gt, copy.deepcopy(records)), 'segm')
    # boundary-iou-api: out of range if area < low or area >= high (lvis-api: area > high).
    evaluator.params.area_rng = [[low, np.nextafter(high, -np.inf)]
                                 for low, high in evaluator.params.area_rng]
    evaluator.run()
    return dict(evaluator.get_results())


# ----------------------------------------------------------------------------- tests
def test_mask_boundary_equals_full_image_definition():
    rng = np.random.default_rng(0)
    for trial in range(150):
        height, width = (int(v) for v in rng.integers(10, 160, 2))
        mask = np.zeros((height, width), np.uint8)
        for _ in range(int(rng.integers(1, 4))):  # rectangles, some cut by the image border
            x0, y0 = int(rng.integers(-15, width)), int(rng.integers(-15, height))
            mask[max(y0, 0):y0 + int(rng.integers(1, 80)), max(x0, 0):x0 + int(rng.integers(1, 80))] = 1
        mask[rng.random((height, width)) < 0.03] ^= 1  # holes and specks
        boundary = mask_boundary(mask_utils.encode(np.asfortranarray(mask)), boundary_width(height, width))
        full = np.zeros((height, width), bool)
        full[boundary.y0:boundary.y0 + boundary.pixels.shape[0],
             boundary.x0:boundary.x0 + boundary.pixels.shape[1]] = boundary.pixels
        assert np.array_equal(full, reference_boundary(mask).astype(bool)), trial
        assert boundary.count == int(full.sum())


@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
def test_every_key_equals_lvis_api(lvis_files, iou_type):
    gt, records, gt_path, results_path = lvis_files
    ours = evaluate_result_files(gt_path, results_path, [iou_type], num_workers=1, progress=False)[iou_type]
    reference = lvis_api_results(gt_path, records, iou_type)
    assert set(reference) == set(ALL_RESULT_KEYS)
    for key in ALL_RESULT_KEYS:
        assert abs(ours.results[key] - reference[key]) <= TOLERANCE, (key, ours.results[key], reference[key])
    assert 0.05 < ours.results['AP'] < 0.95  # a meaningful (not degenerate) score


def test_boundary_ap_equals_reference_definition(lvis_files):
    gt, records, gt_path, results_path = lvis_files
    outputs = evaluate_result_files(gt_path, results_path, ['segm', 'boundary'], num_workers=2,
                                    progress=False)
    reference = reference_boundary_ap(gt_path, records)
    for key in ALL_RESULT_KEYS:
        assert abs(outputs['boundary'].results[key] - reference[key]) <= TOLERANCE, key
    assert outputs['boundary'].results['AP'] < outputs['segm'].results['AP']  # boundaries are stricter


def test_mask_only_results_use_mask_area_and_box(lvis_files):
    """lvis-api: without a box in the first record, the area is the mask's and the box its extent."""
    gt, records, gt_path, results_path = lvis_files
    images = {im['id']: im for im in gt['images']}

    def compressed(record):  # lvis-api takes only compressed RLE without boxes
        segmentation, image = record['segmentation'], images[record['image_id']]
        if isinstance(segmentation, dict) and isinstance(segmentation['counts'], str):
            return segmentation
        rle = mask_utils.frPyObjects(segmentation, image['height'], image['width'])
        rle = mask_utils.merge(rle) if isinstance(rle, list) else rle
        return dict(size=rle['size'], counts=rle['counts'].decode())

    masks_only = [dict(image_id=r['image_id'], category_id=r['category_id'], score=r['score'],
                       segmentation=compressed(r)) for r in records]
    path = results_path.with_name('masks_only.json')
    path.write_text(json.dumps(masks_only))
    ours = evaluate_result_files(gt_path, path, ['bbox', 'segm'], num_workers=1, progress=False)
    for iou_type in ('bbox', 'segm'):
        reference = lvis_api_results(gt_path, masks_only, iou_type)
        for key in ALL_RESULT_KEYS:
            assert abs(ours[iou_type].results[key] - reference[key]) <= TOLERANCE, (iou_type, key)


def test_chunked_reader_keeps_every_record(tmp_path):
    records = [dict(image_id=i, category_id=1, score=0.5, bbox=[1, 2, 3, 4],
                    note='quotes \\" braces }{ ][ and a backslash \\\\' if i % 3 else 'x\\\\')
               for i in range(40)]
    text = json.dumps(records)
    path = tmp_path / 'r.json'
    path.write_text('\n ' + text.replace('}, {', '},\n  {') + '\n')
    chunks = list(iter_record_chunks(path, chunk_bytes=97))
    assert len(chunks) > 5
    assert [r for chunk in chunks for r in chunk] == json.loads(text)
    path.write_text(' ' * 300 + text)  # leading whitespace longer than a chunk
    assert [r for chunk in iter_record_chunks(path, chunk_bytes=64) for r in chunk] == json.loads(text)


@pytest.mark.parametrize('text, expected', [
    ('{"image_id": 1}', 'must hold a JSON list'),
    ('[{"a": 1}, {"b": 2}', 'not closed'),
    ('[{"a": 1}] x', 'unexpected data after the closing "]" (byte 9)'),
    ('[{"a": 1}, {"b": [1]', 'unexpected data after the last complete record (byte 9)'),
    ('[{"a": 1},, {"b": 2}]', 'invalid JSON near byte 10'),
])
def test_malformed_json_lists_are_named(tmp_path, text, expected):
    path = tmp_path / 'r.json'
    path.write_text(text)
    with pytest.raises(ResultFileError) as error:
        list(iter_record_chunks(path, chunk_bytes=8))
    assert str(error.value).startswith(f'{path}: ') and expected in str(error.value), str(error.value)


def test_ground_truth_segmentations_come_back_as_in_the_file():
    segmentations = [[[1, 2.5, 7, 2, 4, 9]], {'size': [4, 5], 'counts': 'abc'},
                     [[0.0, 0.0, 3.0, 0.0, 3.0, 3.0], [5, 5, 8, 5, 8, 8, 5, 8]], [[1, 'x', 3, 4, 5, 6]], None,
                     [], [[2, 2, 6, 2, 6, 6]]]
    packed = GTSegmentations.from_list(segmentations)
    assert len(packed) == len(segmentations)
    for row, expected in enumerate(segmentations):
        assert packed[row] == expected, row
        if row in (0, 2, 6):  # polygons: Python floats, as pycocotools gets them from the file
            assert all(type(v) is float for polygon in packed[row] for v in polygon)
    assert mask_utils.merge(mask_utils.frPyObjects(packed[2], 12, 12)) == \
        mask_utils.merge(mask_utils.frPyObjects(segmentations[2], 12, 12))


def _bad(records: list[dict], index: int, **change) -> list[dict]:
    records = copy.deepcopy(records)
    for key, value in change.items():
        if value is None:
            records[index].pop(key)
        else:
            records[index][key] = value
    return records


@pytest.mark.parametrize('name, change, expected', [
    ('unknown category', dict(category_id=99999), 'category id 99999 is not in'),
    ('unknown image', dict(image_id=123456), 'image id 123456 is not in'),
    ('short bbox', dict(bbox=[1.0, 2.0, 3.0]), 'bbox must be 4 numbers'),
    ('nan score', dict(score=float('nan')), 'score is NaN'),
    ('missing score', dict(score=None), "has no 'score'"),
    ('short polygon', dict(segmentation=[[1.0, 1.0, 5.0, 5.0]]), 'a polygon needs at least 3 points'),
    ('mask size', dict(segmentation=dict(size=[7, 9], counts='0')), 'differs from the image size'),
])
def test_bad_records_are_named(lvis_files, tmp_path, name, change, expected):
    gt, records, gt_path, _ = lvis_files
    index = 5
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(_bad(records, index, **change)))
    with pytest.raises(ResultFileError) as error:
        evaluate_result_files(gt_path, path, ['segm'], num_workers=1, progress=False)
    assert f'record #{index} ' in str(error.value) and expected in str(error.value), str(error.value)
    assert str(path) in str(error.value)


def test_results_of_another_annotation_set(lvis_files, tmp_path):
    gt, records, gt_path, _ = lvis_files
    path = tmp_path / 'coco.json'
    path.write_text(json.dumps([dict(r, image_id=r['image_id'] + 100000) for r in records]))
    with pytest.raises(ResultFileError, match='another annotation set'):
        evaluate_result_files(gt_path, path, ['bbox'], num_workers=1, progress=False)


BLOCKER = textwrap.dedent('''
    """Simulates an environment without mmdet / mmengine / mmcv / torch: importing them fails."""
    import sys

    BLOCKED = {'mmdet', 'mmengine', 'mmcv', 'torch', 'torchvision'}


    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)
            return None


    sys.meta_path.insert(0, _Blocker())
''')


def test_cli_runs_without_mmdet_mmengine_torch(lvis_files, tmp_path, repo_root):
    gt, records, gt_path, results_path = lvis_files
    (tmp_path / 'sitecustomize.py').write_text(BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(repo_root)]))
    probe = subprocess.run([sys.executable, '-c', 'import torch'], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and 'blocked' in probe.stderr
    out = tmp_path / 'metrics.json'
    command = [sys.executable, '-m', 'xpaste_mm.evaluation.lvis_eval_cli', str(gt_path), str(results_path),
               '--iou-type', 'bbox', 'segm', 'boundary', '--per-category', '--out', str(out), '--no-progress',
               '--workers', '1']
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=300 catIds=all]' in done.stdout
    metrics = json.loads(out.read_text())
    expected = evaluate_result_files(gt_path, results_path, ['bbox', 'segm', 'boundary'], num_workers=1,
                                     progress=False)
    for iou_type, output in expected.items():
        assert metrics[iou_type] == pytest.approx(dict(output.results), abs=TOLERANCE)
        per_category = metrics[f'{iou_type}_per_category']
        assert [c['id'] for c in per_category] == sorted(c['id'] for c in gt['categories'])
        with_gt = [c['AP'] for c in per_category if c['AP'] is not None]
        assert with_gt and math.isclose(np.mean(with_gt), output.results['AP'], abs_tol=1e-9)


def test_cli_bad_input_exit_status(lvis_files, tmp_path):
    from xpaste_mm.evaluation.lvis_eval_cli import main
    gt, records, gt_path, _ = lvis_files
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(_bad(records, 3, score=float('nan'))))
    assert main([str(gt_path), str(path), '--no-progress', '--workers', '1']) == 2


def test_parallel_chunked_reading_equals_serial(lvis_files, tmp_path):
    from xpaste_mm.evaluation import LVISGroundTruth, read_result_file
    gt, records, gt_path, results_path = lvis_files
    ground_truth = LVISGroundTruth.from_file(gt_path)
    serial, count = read_result_file(results_path, ground_truth, True)
    parallel, parallel_count = read_result_file(results_path, ground_truth, True, num_workers=2,
                                                chunk_bytes=3000)
    assert count == parallel_count == len(records)
    for field in ('image_index', 'category_index', 'scores', 'bboxes'):
        assert np.array_equal(getattr(serial, field), getattr(parallel, field)), field
    assert serial.masks.counts == parallel.masks.counts and len(serial.masks) == len(serial.scores) > 100
    late = len(records) - 3  # an error in a late chunk, found by a worker, names the file's record number
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(_bad(records, late, bbox=[1.0, 2.0])))
    with pytest.raises(ResultFileError, match=f'record #{late} .*bbox must be 4 numbers'):
        read_result_file(path, ground_truth, True, num_workers=2, chunk_bytes=3000)
    path.write_text(json.dumps(records)[:-2000])
    with pytest.raises(ResultFileError, match='not closed'):
        read_result_file(path, ground_truth, True, num_workers=2, chunk_bytes=3000)
