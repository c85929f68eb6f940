"""LVIS v1 val-like ground truth and detections at a realistic scale (for evaluation benchmarks).

1,203 categories with LVIS's long tail (image counts and r/c/f groups read from
``lvis_v1_train_cat_info.json`` when given, else a synthetic long tail with LVIS's group sizes), ~6
categories and ~12 polygon instances per image (some crowded images), neg / not-exhaustive lists, and
300 detections per image in mmdet's result format (jittered hits, duplicates, confusions, background
boxes, a few zero-area boxes) with float32 x1y1x2y2 pixel boxes, scores and RLE masks, also written as
one lvis-api results JSON.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
from tqdm import tqdm

from ..categories import read_category_list
from ..utils.io import atomic_write, atomic_write_bytes, atomic_write_json

NUM_CATEGORIES = 1203
LVIS_GROUP_SIZES = {'r': 337, 'c': 461, 'f': 405}  # LVIS v1 categories per frequency group
DETS_PER_IMAGE = 300


def lvis_like_categories(cat_info: str | None, rng: np.random.Generator) -> list[dict]:
    """1,203 LVIS categories (id, name, frequency, image_count): real ones, or a synthetic long tail."""
    if cat_info and Path(cat_info).is_file():
        info = read_category_list(cat_info)
        return [dict(id=int(c['id']), name=c['name'], frequency=c['frequency'],
                     image_count=int(c['image_count'])) for c in sorted(info, key=lambda c: c['id'])]
    ranges = {'r': (1, 10), 'c': (10, 100), 'f': (100, 20000)}
    frequencies = [f for f, n in LVIS_GROUP_SIZES.items() for _ in range(n)]
    rng.shuffle(frequencies)
    categories = []
    for index, frequency in enumerate(frequencies):
        low, high = ranges[frequency]
        count = int(np.exp(rng.uniform(np.log(low), np.log(high))))
        categories.append(dict(id=index + 1, name=f'category_{index + 1}', frequency=frequency,
                               image_count=max(1, count)))
    return categories


def _polygon(rng, cx, cy, w, h, num_vertices, jitter):
    """(n, 2*V) ring polygons inscribed in boxes of size w x h around (cx, cy)."""
    t = np.linspace(0, 2 * np.pi, num_vertices, endpoint=False)[None]
    radius = 1 + jitter * rng.uniform(-1, 1, size=(len(cx), num_vertices))
    xs = cx[:, None] + 0.5 * w[:, None] * radius * np.cos(t)
    ys = cy[:, None] + 0.5 * h[:, None] * radius * np.sin(t)
    return np.stack([xs, ys], axis=2).reshape(len(cx), -1)


def _clip_boxes(x1, y1, x2, y2, width, height):
    return (np.clip(x1, 0, width), np.clip(y1, 0, height), np.clip(x2, 0, width), np.clip(y2, 0, height))


def make_eval_image(rng, index, categories, weights, forced_category):
    """One image's ground truth (record, annotations) and its 300 predictions (mmdet format)."""
    num_categories = len(categories)
    height, width = int(rng.choice([375, 427, 480, 512, 640])), 640
    num_present = 1 + rng.poisson(5)
    present = rng.choice(num_categories, size=min(num_present, num_categories), replace=False, p=weights)
    if forced_category is not None:
        present = np.unique(np.r_[present, forced_category])
    counts = 1 + rng.geometric(0.55, size=len(present)) - 1
    if rng.random() < 0.03:  # crowded image: one category with many small instances
        counts[0] = rng.integers(25, 70)
    labels = np.repeat(present, counts)
    n = len(labels)
    side = np.exp(rng.uniform(np.log(8), np.log(0.8 * min(height, width)), size=n))
    aspect = np.exp(rng.uniform(-0.7, 0.7, size=n))
    crowded = counts[0] >= 25
    if crowded:
        side[:counts[0]] = rng.uniform(6, 40, size=counts[0])
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    cx, cy = rng.uniform(0, width, size=n), rng.uniform(0, height, size=n)
    polys = _polygon(rng, cx, cy, w, h, 12, 0.15)
    polys[:, 0::2] = polys[:, 0::2].clip(0, width)
    polys[:, 1::2] = polys[:, 1::2].clip(0, height)
    xs, ys = polys[:, 0::2], polys[:, 1::2]
    areas = 0.5 * np.abs(np.sum(xs * np.roll(ys, -1, 1) - np.roll(xs, -1, 1) * ys, axis=1))
    x1, y1, x2, y2 = xs.min(1), ys.min(1), xs.max(1), ys.max(1)
    image_id = index + 1
    annotations = [dict(image_id=image_id, category_id=categories[int(c)]['id'],
                        segmentation=[np.round(p, 2).tolist()],
                        bbox=[round(float(a), 2), round(float(b), 2), round(float(c_ - a), 2),
                              round(float(d - b), 2)], area=round(float(ar), 2))
                   for c, p, a, b, c_, d, ar in zip(labels, polys, x1, y1, x2, y2, areas)]
    absent = np.setdiff1d(np.arange(num_categories), present)
    negative = rng.choice(absent, size=min(8, len(absent)), replace=False,
                          p=weights[absent] / weights[absent].sum())
    not_exhaustive = present[rng.random(len(present)) < 0.15]
    record = dict(id=image_id, height=height, width=width,
                  coco_url=f'http://images.cocodataset.org/val2017/{image_id:012d}.jpg',
                  neg_category_ids=sorted(categories[int(c)]['id'] for c in negative),
                  not_exhaustive_category_ids=sorted(categories[int(c)]['id'] for c in not_exhaustive))

    # Predictions: hits (with duplicates and label confusions), then background up to 300.
    hit = rng.random(n) < 0.85
    dup = hit & (rng.random(n) < 0.5)
    src = np.r_[np.flatnonzero(hit), np.flatnonzero(dup)][:DETS_PER_IMAGE]
    noise = np.r_[np.full(hit.sum(), 0.08), np.full(dup.sum(), 0.25)][:len(src)]
    bw, bh = (x2 - x1)[src], (y2 - y1)[src]
    jitter = rng.normal(0, 1, size=(len(src), 4)) * noise[:, None] * np.stack([bw, bh, bw, bh], 1)
    px1, py1, px2, py2 = x1[src] + jitter[:, 0], y1[src] + jitter[:, 1], x2[src] + jitter[:, 2], \
        y2[src] + jitter[:, 3]
    plabels = labels[src].copy()
    confused = rng.random(len(src)) < 0.12
    plabels[confused] = rng.choice(np.r_[negative, present], size=confused.sum())
    pscores = np.clip(rng.beta(4, 2, size=len(src)) * np.where(noise > 0.1, 0.6, 1.0), 0.01, 1)
    num_background = DETS_PER_IMAGE - len(src)
    kind = rng.random(num_background)
    blabels = np.where(kind < 0.35, rng.choice(present, size=num_background),
                       np.where(kind < 0.5, rng.choice(negative, size=num_background),
                                rng.choice(num_categories, size=num_background, p=weights)))
    bside = np.exp(rng.uniform(np.log(4), np.log(0.7 * min(height, width)), size=num_background))
    baspect = np.exp(rng.uniform(-0.9, 0.9, size=num_background))
    bcx, bcy = rng.uniform(0, width, size=num_background), rng.uniform(0, height, size=num_background)
    bw_, bh_ = bside * np.sqrt(baspect), bside / np.sqrt(baspect)
    bx1, by1 = bcx - bw_ / 2, bcy - bh_ / 2
    bx2, by2 = bx1 + bw_, by1 + bh_
    zero = rng.random(num_background) < 0.003  # degenerate boxes (zero area)
    bx2[zero] = bx1[zero]
    bscores = rng.uniform(0, 0.55, size=num_background) ** 2
    box = _clip_boxes(np.r_[px1, bx1], np.r_[py1, by1], np.r_[px2, bx2], np.r_[py2, by2], width, height)
    bboxes = np.stack(box, 1).astype(np.float32)
    bboxes[:, 2:] = np.maximum(bboxes[:, 2:], bboxes[:, :2])
    scores = np.r_[pscores, bscores].astype(np.float32)
    order = np.argsort(-scores, kind='stable')
    bboxes, scores, pred_labels = bboxes[order], scores[order], np.r_[plabels, blabels][order]
    bx, by = (bboxes[:, 0] + bboxes[:, 2]) / 2, (bboxes[:, 1] + bboxes[:, 3]) / 2
    mask_polys = _polygon(rng, bx, by, bboxes[:, 2] - bboxes[:, 0], bboxes[:, 3] - bboxes[:, 1], 10, 0.1)
    masks = mask_utils.frPyObjects(mask_polys.astype(np.float64).tolist(), height, width)
    prediction = dict(img_id=image_id, bboxes=bboxes, scores=scores, labels=pred_labels.astype(np.int64),
                      masks=masks)
    return record, annotations, prediction


def result_records(prediction: dict, category_ids: list[int]) -> list[dict]:
    """One image's predictions as lvis-api result records (box xywh and RLE mask in one record, as
    detectron2 writes them); ``category_ids[label]`` is the category id of a label."""
    boxes = prediction['bboxes'].astype(np.float64)
    boxes[:, 2:] -= boxes[:, :2]
    return [dict(image_id=prediction['img_id'], category_id=category_ids[int(label)], bbox=box,
                 score=float(score), segmentation=dict(size=rle['size'], counts=rle['counts'].decode()))
            for box, score, label, rle in zip(boxes.tolist(), prediction['scores'].tolist(),
                                              prediction['labels'], prediction['masks'])]


def generate_lvis_eval_data(num_images: int, cat_info: str | None, seed: int, out_dir: Path,
                            with_pickle: bool = True) -> tuple[Path, Path, Path]:
    """Write ``(ground-truth JSON, lvis-api results JSON, predictions pickle)`` under ``out_dir``.

    The pickle (a list of mmdet result dicts, for ``FastLVISMetric``/mmdet's metric) is written only
    ``with_pickle``; the results JSON is streamed image by image, never held in memory. Files already
    written for the same arguments are reused.
    """
    tag = f'{num_images}_{seed}_{"real" if cat_info and Path(cat_info).is_file() else "synthetic"}'
    gt_path, pred_path = out_dir / f'lvis_gt_{tag}.json', out_dir / f'lvis_preds_{tag}.pkl'
    results_path = out_dir / f'lvis_results_{tag}.json'
    if gt_path.is_file() and results_path.is_file() and (pred_path.is_file() or not with_pickle):
        return gt_path, results_path, pred_path
    rng = np.random.default_rng(seed)
    categories = lvis_like_categories(cat_info, rng)
    category_ids = [c['id'] for c in categories]
    weights = np.array([c['image_count'] for c in categories], dtype=np.float64)
    weights /= weights.sum()
    # Like LVIS val, (nearly) every category occurs somewhere: each is forced into one random image.
    forced = {}
    for category, image in enumerate(rng.integers(0, num_images, size=len(categories))):
        forced.setdefault(int(image), []).append(category)
    images, annotations, predictions = [], [], []
    out_dir.mkdir(parents=True, exist_ok=True)

    def write_results(tmp: str) -> None:
        with open(tmp, 'w', encoding='utf-8') as results_file:
            results_file.write('[')
            for index in tqdm(range(num_images), desc='generating synthetic LVIS'):
                extra = forced.get(index)
                record, anns, prediction = make_eval_image(rng, index, categories, weights,
                                                           np.array(extra) if extra else None)
                images.append(record)
                annotations.extend(anns)
                text = json.dumps(result_records(prediction, category_ids))[1:-1]
                results_file.write((', ' if index and text else '') + text)
                if with_pickle:
                    predictions.append(prediction)
            results_file.write(']')

    atomic_write(results_path, write_results)
    for ann_id, ann in enumerate(annotations, start=1):
        ann['id'] = ann_id
    gt = dict(info=dict(description='synthetic LVIS v1 val-like benchmark data'), licenses=[],
              images=images, annotations=annotations,
              categories=[{'id': c['id'], 'name': c['name'], 'frequency': c['frequency'],
                           'image_count': c['image_count'], 'synonyms': [c['name']], 'synset': '', 'def': ''}
                          for c in categories])
    atomic_write_json(gt_path, gt)
    if with_pickle:
        atomic_write_bytes(pred_path, pickle.dumps(predictions, protocol=pickle.HIGHEST_PROTOCOL))
    return gt_path, results_path, pred_path
