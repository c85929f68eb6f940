"""XPasteCopyPaste: ROI-limited compositing vs a full-image reference, properties, modes and robustness."""
import copy
import json

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks

from xpaste_mm.datasets import instance_pool as instance_pool_module
from xpaste_mm.datasets.transforms import InstanceLayers, PreparedInstance, XPasteCopyPaste
from xpaste_mm.datasets.transforms.instance_aug import target_sizes
from xpaste_mm.testing import make_synthetic_pool

CATEGORY_IDS = [1, 2, 3, 4, 6]  # the dataset; the pool has no crop of category 6
HYPOTHESIS = settings(max_examples=80, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope='module')
def pool_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('xpaste_pool')
    make_synthetic_pool(root / 'pool', [1, 2, 3, 4], [3, 1, 6, 2], size_range=(6, 40), seed=3)
    stats = {'1': [0.2, 0.1], '2': [0.05, 0.02], '3': [0.3, 0.15], '4': [0.1, 0.0], '6': [0.2, 0.1]}
    (root / 'stats.json').write_text(json.dumps(stats))
    return root


def make_transform(pool_dir, **kwargs):
    kwargs.setdefault('category_ids', CATEGORY_IDS)
    return XPasteCopyPaste(pool_file=str(pool_dir / 'pool' / 'pool_index.npz'),
                           stats_file=str(pool_dir / 'stats.json'), **kwargs)


def random_results(seed: int, height: int, width: int, count: int, polygons: bool = False) -> dict:
    """A BGR image with ``count`` ellipse instances whose annotation boxes are loose (as after a crop)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    masks, boxes, polys = [], [], []
    for _ in range(count):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        ax, ay = rng.integers(2, max(width // 3, 3)), rng.integers(2, max(height // 3, 3))
        mask = np.zeros((height, width), np.uint8)
        cv2.ellipse(mask, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, 1, -1)
        x, y, w, h = cv2.boundingRect(mask)
        jitter = rng.uniform(-3, 3, 4)
        boxes.append(np.clip([x + jitter[0], y + jitter[1], x + w + jitter[2], y + h + jitter[3]], 0,
                             [width, height, width, height]))
        masks.append(mask)
        polys.append([np.array([x, y, x + w, y, x + w, y + h, x, y + h], dtype=np.float64)])
    results = dict(img=img, img_shape=(height, width),
                   gt_bboxes=HorizontalBoxes(np.array(boxes, np.float32).reshape(-1, 4)),
                   gt_bboxes_labels=rng.integers(0, len(CATEGORY_IDS), size=count).astype(np.int64),
                   gt_ignore_flags=rng.random(count) < 0.2)
    if polygons:
        results['gt_masks'] = PolygonMasks(polys, height, width)
    else:
        bitmaps = np.array(masks, np.uint8).reshape(count, height, width)
        results['gt_masks'] = BitmapMasks(bitmaps, height, width)
    return results


def tight_boxes(masks: np.ndarray) -> np.ndarray:
    return BitmapMasks(masks, *masks.shape[1:]).get_bboxes('hbox').numpy()


def reference_composite(results, instances, bbox_thr, mask_thr, min_area):
    """X-Paste's algorithm with full-image canvases: every paste rewrites every mask and box."""
    img = results['img'].copy()
    height, width = img.shape[:2]
    gt_masks = results['gt_masks']
    masks = list((gt_masks.to_ndarray() if isinstance(gt_masks, PolygonMasks) else gt_masks.masks) != 0)
    boxes = list(results['gt_bboxes'].numpy().astype(np.float64))
    labels = list(results['gt_bboxes_labels'])
    pasted = [False] * len(labels)
    ignore = list(results['gt_ignore_flags'])
    any_pasted = False
    for inst in instances:
        h, w = inst.mask.shape
        canvas = np.zeros((height + 2 * h, width + 2 * w, 5), np.float32)  # bgr, alpha, mask
        canvas[inst.y0 + h:inst.y0 + 2 * h, inst.x0 + w:inst.x0 + 2 * w] = np.dstack(
            [inst.bgr, inst.alpha, inst.mask])
        canvas = canvas[h:h + height, w:w + width]
        src, alpha, new = canvas[..., :3], canvas[..., 3], canvas[..., 4] > 0
        if new.sum() < min_area:
            continue
        masks = [m & ~new for m in masks]
        new_boxes = tight_boxes(np.array(masks, np.uint8).reshape(-1, height, width)).astype(np.float64)
        keep = [bool((np.abs(nb - ob) <= bbox_thr).all() or m.sum() > mask_thr)
                for nb, ob, m in zip(new_boxes, boxes, masks)]
        masks, boxes = [m for m, k in zip(masks, keep) if k], [b for b, k in zip(new_boxes, keep) if k]
        labels, pasted, ignore = ([v for v, k in zip(seq, keep) if k] for seq in (labels, pasted, ignore))
        if inst.blend == 'basic':
            img = np.where(new[..., None], src.astype(np.uint8), img)
        else:
            weight = (cv2.blur(new.astype(np.float32), (5, 5)) if inst.blend == 'gaussian'
                      else alpha * np.float32(1 / 255))[..., None]
            img = (img * (1 - weight) + src.astype(np.uint8) * weight).astype(np.uint8)
        masks.append(new)
        boxes.append(tight_boxes(new[None].astype(np.uint8))[0].astype(np.float64))
        labels.append(inst.label)
        pasted.append(True)
        ignore.append(False)
        any_pasted = True
    if not any_pasted:
        return None
    keep = [m.sum() > 0 and (not p or m.sum() >= min_area) for m, p in zip(masks, pasted)]
    kept_masks = np.array([m for m, k in zip(masks, keep) if k], np.uint8).reshape(-1, height, width)
    return dict(img=img, masks=kept_masks,
                boxes=np.array([b for b, k in zip(boxes, keep) if k]).reshape(-1, 4),
                labels=np.array([v for v, k in zip(labels, keep) if k]),
                is_pasted=np.array([v for v, k in zip(pasted, keep) if k], bool),
                ignore=np.array([v for v, k in zip(ignore, keep) if k], bool))


@HYPOTHESIS
@given(seed=st.integers(0, 2**20), height=st.integers(16, 72), width=st.integers(16, 72),
       count=st.integers(0, 5), max_num=st.integers(1, 14),
       blends=st.sampled_from([('basic',), ('gaussian',), ('alpha',), ('basic', 'gaussian', 'alpha')]),
       bbox_thr=st.sampled_from([0, 3, 10]), mask_thr=st.sampled_from([0, 20, 300]),
       min_area=st.sampled_from([1, 15]), mask_threshold=st.sampled_from([0, 128]),
       rotate=st.sampled_from([0.0, 30.0]), jitter=st.sampled_from([0.0, 1.0]))
def test_composite_matches_full_image_reference(pool_dir, seed, height, width, count, max_num, blends,
                                                bbox_thr, mask_thr, min_area, mask_threshold, rotate, jitter):
    transform = make_transform(pool_dir, max_num_pasted=max_num, blend_modes=blends,
                               bbox_occluded_thr=bbox_thr, mask_occluded_thr=mask_thr,
                               min_visible_area=min_area, mask_threshold=mask_threshold, rotate_range=rotate,
                               color_jitter_prob=jitter)
    results = random_results(seed, height, width, count)
    instances = transform.sample_instances(np.random.default_rng(seed), (height, width),
                                            results['gt_bboxes_labels'])
    expected = reference_composite(copy.deepcopy(results), instances, bbox_thr, mask_thr, min_area)
    out = transform.composite(copy.deepcopy(results), instances)
    if expected is None:
        np.testing.assert_array_equal(out['img'], results['img'])
        assert len(out['gt_bboxes']) == count
        return
    np.testing.assert_array_equal(out['img'], expected['img'])
    np.testing.assert_array_equal(out['gt_masks'].masks, expected['masks'])
    np.testing.assert_array_equal(out['gt_bboxes'].numpy(), expected['boxes'])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], expected['labels'])
    np.testing.assert_array_equal(out['gt_is_pasted'], expected['is_pasted'])
    np.testing.assert_array_equal(out['gt_ignore_flags'], expected['ignore'])


@HYPOTHESIS
@given(seed=st.integers(0, 2**20), height=st.integers(8, 96), width=st.integers(8, 96),
       count=st.integers(0, 6),       max_num=st.integers(1, 20), polygons=st.booleans(),
       mode=st.sampled_from(['cas_random', 'random', 'cats_random']))
def test_transform_output_properties(pool_dir, seed, height, width, count, max_num, polygons, mode):
    transform = make_transform(pool_dir, max_num_pasted=max_num, sample_mode=mode, rotate_range=20)
    results = random_results(seed, height, width, count, polygons)
    np.random.seed(seed)
    out = transform(copy.deepcopy(results))
    np.random.seed(seed)
    again = transform(copy.deepcopy(results))
    np.testing.assert_array_equal(out['img'], again['img'])
    np.testing.assert_array_equal(out['gt_bboxes'].numpy(), again['gt_bboxes'].numpy())

    n = len(out['gt_bboxes'])
    flags = out['gt_is_pasted']
    assert flags.dtype == bool
    assert len(flags) == len(out['gt_bboxes_labels']) == len(out['gt_ignore_flags']) == n
    assert flags.sum() <= max_num - 1 and n <= count + max_num - 1
    assert len(out['gt_masks']) == n and (out['gt_masks'].height, out['gt_masks'].width) == (height, width)
    labels = out['gt_bboxes_labels']
    assert ((labels >= 0) & (labels < len(CATEGORY_IDS))).all()
    assert not (labels[flags] == CATEGORY_IDS.index(6)).any()  # category 6 has no pool crop
    if mode == 'cats_random' and count and flags.any():
        pool_labels = set(results['gt_bboxes_labels']) - {CATEGORY_IDS.index(6)}
        if pool_labels:
            assert set(labels[flags]) <= pool_labels
    if flags.any():  # something was pasted: every box is tight to its non-empty mask
        masks = out['gt_masks'].masks
        assert isinstance(out['gt_masks'], BitmapMasks) and masks.dtype == np.uint8
        assert (masks.reshape(n, -1).sum(1) > 0).all()
        np.testing.assert_array_equal(out['gt_bboxes'].numpy(), tight_boxes(masks))
        # originals only lose pixels; the image changed only where a pasted mask ever was
        originals = ~flags
        assert originals.sum() <= count
    else:
        np.testing.assert_array_equal(out['img'], results['img'])
        assert n == count


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.data(), size=st.integers(4, 14), count=st.integers(1, 4), steps=st.integers(1, 5),
       bbox_thr=st.sampled_from([0, 1, 3]), mask_thr=st.sampled_from([0, 4, 30]))
def test_instance_layers_match_full_recompute(data, size, count, steps, bbox_thr, mask_thr):
    """Small canvases make occluders start and end exactly on box edges, the cases where the
    ROI-limited box update could go wrong."""
    bits = st.lists(st.sampled_from([0, 0, 0, 1]), min_size=size * size, max_size=size * size)  # sparse
    masks = np.array([data.draw(bits) for _ in range(count)], np.uint8).reshape(count, size, size)
    annotation = tight_boxes(masks) + np.array(data.draw(st.lists(st.integers(-2, 2), min_size=4 * count,
                                                                  max_size=4 * count))).reshape(count, 4)
    layers = InstanceLayers(masks.copy(), annotation, np.arange(count), np.zeros(count, bool),
                            np.zeros(count, bool), bbox_thr, mask_thr)
    full, boxes, alive = masks.astype(bool), annotation.astype(np.float64), np.ones(count, bool)
    for _ in range(steps):
        x0, y0 = data.draw(st.integers(0, size - 1)), data.draw(st.integers(0, size - 1))
        w, h = data.draw(st.integers(1, size - x0)), data.draw(st.integers(1, size - y0))
        region = np.ones((h, w), np.uint8)
        if data.draw(st.booleans()):
            cells = data.draw(st.lists(st.booleans(), min_size=w * h, max_size=w * h))
            region[:] = np.array(cells).reshape(h, w)
        layers.occlude(x0, y0, region)
        covered = np.zeros((size, size), bool)
        covered[y0:y0 + h, x0:x0 + w] = region > 0
        full &= ~covered
        new_boxes = tight_boxes(full.astype(np.uint8)).astype(np.float64)
        moved = np.abs(new_boxes - boxes).max(1)
        alive &= (moved <= bbox_thr) | (full.reshape(count, -1).sum(1) > mask_thr)
        boxes = new_boxes
        np.testing.assert_array_equal(layers.alive, alive)
        np.testing.assert_array_equal(layers.boxes[alive], boxes[alive])
    out = layers.finalize()
    keep = alive & (full.reshape(count, -1).sum(1) > 0)
    np.testing.assert_array_equal(out['masks'], full[keep].astype(np.uint8))
    np.testing.assert_array_equal(out['boxes'], boxes[keep])


@pytest.mark.parametrize('side', ['left', 'right', 'top', 'bottom'])
def test_box_shrinks_when_an_edge_line_is_covered(side):
    mask = np.zeros((12, 12), np.uint8)
    cv2.ellipse(mask, (6, 6), (4, 3), 0, 0, 360, 1, -1)  # box [2, 3, 11, 10]; edge lines touch only mid
    region = {'left': (0, 5, 3, 3), 'right': (10, 5, 2, 3), 'top': (4, 0, 5, 4), 'bottom': (4, 9, 5, 3)}[side]
    x0, y0, w, h = region
    layers = InstanceLayers(mask[None].copy(), tight_boxes(mask[None]), [0], [False], [False], 0, 0)
    layers.occlude(x0, y0, np.ones((h, w), np.uint8))
    expected = mask.copy()
    expected[y0:y0 + h, x0:x0 + w] = 0
    np.testing.assert_array_equal(layers.boxes[0], tight_boxes(expected[None])[0])
    assert not (layers.boxes[0] == tight_boxes(mask[None])[0]).all()


def test_occlusion_rule_drops_hidden_and_keeps_partly_covered(pool_dir):
    transform = make_transform(pool_dir, min_visible_area=1)
    results = random_results(0, 60, 60, 0)
    masks = np.zeros((3, 60, 60), np.uint8)
    masks[0, 10:20, 10:20] = 1  # 100 px, fully covered below -> dropped
    masks[1, 30:60, 0:40] = 1  # 1200 px, right part covered -> kept (> 300 px left)
    masks[2, 0:8, 40:60] = 1  # untouched
    results.update(gt_bboxes=HorizontalBoxes(np.array([[10, 10, 20, 20], [0, 30, 40, 60], [40, 0, 60, 8]],
                                                      np.float32)),
                   gt_bboxes_labels=np.array([0, 1, 2]), gt_ignore_flags=np.zeros(3, bool),
                   gt_masks=BitmapMasks(masks, 60, 60))
    square = np.ones((30, 30), np.uint8)
    inst = PreparedInstance(x0=5, y0=5, bgr=np.full((30, 30, 3), 9, np.uint8), alpha=square * 255,
                            mask=square, label=3, blend='basic')
    cover = PreparedInstance(x0=20, y0=25, bgr=np.full((30, 30, 3), 7, np.uint8), alpha=square * 255,
                             mask=square, label=4, blend='basic')
    out = transform.composite(results, [inst, cover])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [1, 2, 3, 4])
    np.testing.assert_array_equal(out['gt_is_pasted'], [False, False, True, True])
    np.testing.assert_array_equal(out['gt_bboxes'].numpy(), [[0, 30, 40, 60], [40, 0, 60, 8], [5, 5, 35, 35],
                                                            [20, 25, 50, 55]])
    assert out['gt_masks'].masks[0].sum() == 1200 - 150 - 500 + 75
    assert out['gt_masks'].masks[2].sum() == 900 - 15 * 10


def test_blend_modes(pool_dir):
    transform = make_transform(pool_dir)
    alpha = np.zeros((21, 21), np.uint8)
    cv2.circle(alpha, (10, 10), 9, 255, -1)
    alpha = cv2.GaussianBlur(alpha, (5, 5), 0)
    mask = (alpha > 0).astype(np.uint8)
    bgr = np.full((21, 21, 3), 200, np.uint8)
    results = {}
    for mode in ('basic', 'gaussian', 'alpha'):
        instance = PreparedInstance(x0=10, y0=10, bgr=bgr, alpha=alpha, mask=mask, label=0, blend=mode)
        results[mode] = transform.composite(dict(img=np.full((40, 40, 3), 50, np.uint8)), [instance])
    region = np.zeros((40, 40), bool)
    region[10:31, 10:31] = mask > 0
    basic = results['basic']['img'][..., 0]
    assert (basic[region] == 200).all() and (basic[~region] == 50).all()
    gaussian = results['gaussian']['img'][..., 0]
    near = cv2.dilate(region.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    core = cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (gaussian[~near] == 50).all() and (gaussian[core] == 200).all()
    edge = near & ~core
    assert ((gaussian[edge] > 50) & (gaussian[edge] < 200)).any()
    soft = results['alpha']['img'][..., 0]
    weight = alpha.astype(np.float64) / 255
    expected = 50 * (1 - weight) + 200 * weight
    assert np.abs(soft[10:31, 10:31] - expected).max() <= 1
    assert ((soft[region] > 50) & (soft[region] < 200)).any()
    for out in results.values():  # the annotation is the same hard mask in every mode
        np.testing.assert_array_equal(out['gt_masks'].masks[0], region)
        assert out['gt_is_pasted'].tolist() == [True]


def test_size_prior_statistics():
    rng = np.random.default_rng(0)
    n = 40000
    normal, aspect = rng.standard_normal(n), rng.uniform(0.8, 1.2, n)
    w, h = target_sizes(normal, aspect, 0.2, 0.05, np.full(n, 30.0), np.full(n, 30.0), 1000, 1000)
    scale = np.sqrt((w + 0.5) * (h + 0.5)) / 1000
    assert abs(scale.mean() - 0.2) < 0.003 and abs(scale.std() - 0.05) < 0.003
    ratio = w / h
    assert 0.78 < ratio.min() and ratio.max() < 1.22 and abs(ratio.mean() - 1.0) < 0.01
    w, h = target_sizes(normal, aspect, 0.05, 1.0, np.full(n, 30.0), np.full(n, 60.0), 400, 800)
    scale = np.sqrt(w * h / (400 * 800))
    assert scale.max() <= 0.5 + 0.01 and scale.min() >= 10 / 400 - 0.01
    assert abs((scale > 0.45).mean() - (1 - 0.6554)) < 0.02  # P(0.05 + N(0, 1) > 0.45), clipped at 0.5
    assert abs((scale < 0.03).mean() - 0.4900) < 0.02  # P(0.05 + N(0, 1) < 10 / 400), clipped there
    assert abs(np.median(w / h) - 0.5) < 0.02


def test_sampled_instances_follow_the_size_prior(tmp_path):
    pool_file = make_synthetic_pool(tmp_path / 'pool', [1], 4, size_range=(40, 40))
    stats = tmp_path / 'stats.json'
    stats.write_text(json.dumps({'1': [0.2, 0.04]}))
    transform = XPasteCopyPaste(pool_file=str(pool_file), stats_file=str(stats), flip_prob=0)
    rng = np.random.default_rng(0)
    sizes = [np.sqrt(inst.mask.size / (400 * 500)) for _ in range(300)
             for inst in transform.sample_instances(rng, (400, 500))]
    assert len(sizes) > 1000
    assert abs(np.mean(sizes) - 0.2) < 0.006 and abs(np.std(sizes) - 0.04) < 0.006


def test_polygon_input_becomes_bitmaps_minus_pasted_pixels(pool_dir):
    transform = make_transform(pool_dir, max_num_pasted=20)
    results = random_results(11, 64, 64, 4, polygons=True)
    before = results['gt_masks'].to_ndarray().astype(bool)
    for seed in range(50):
        np.random.seed(seed)
        out = transform(copy.deepcopy(results))
        if out['gt_is_pasted'].any():
            break
    assert isinstance(out['gt_masks'], BitmapMasks)
    masks = out['gt_masks'].masks.astype(bool)
    flags = out['gt_is_pasted']
    covered = masks[flags].any(0)
    kept = masks[~flags]
    for mask in kept:  # every kept original is one of the inputs minus the pasted pixels
        assert any(((mask == (orig & ~covered)) | covered).all() and (mask <= orig).all() for orig in before)


def test_empty_destination_receives_pastes_unless_disabled(pool_dir):
    transform = make_transform(pool_dir, max_num_pasted=10)
    pasted_any = False
    for seed in range(10):
        np.random.seed(seed)
        out = transform(dict(img=np.zeros((50, 70, 3), np.uint8)))
        n = len(out['gt_is_pasted'])
        assert out['gt_is_pasted'].all()
        if n:
            pasted_any = True
            assert isinstance(out['gt_bboxes'], HorizontalBoxes) and len(out['gt_bboxes']) == n
            assert out['gt_masks'].masks.shape == (n, 50, 70) and out['img'].any()
    assert pasted_any
    off = make_transform(pool_dir, paste_on_empty=False)
    empty = dict(img=np.zeros((50, 70, 3), np.uint8), gt_bboxes=HorizontalBoxes(np.zeros((0, 4), np.float32)),
                 gt_bboxes_labels=np.zeros(0, np.int64), gt_ignore_flags=np.zeros(0, bool),
                 gt_masks=BitmapMasks(np.zeros((0, 50, 70), np.uint8), 50, 70))
    out = off(empty)
    assert len(out['gt_bboxes']) == 0 and not out['img'].any() and out['gt_is_pasted'].shape == (0,)


def test_missing_and_corrupt_crops_never_stop_pasting(tmp_path, monkeypatch):
    pool_file = make_synthetic_pool(tmp_path / 'pool', [1, 2], 3, size_range=(10, 20))
    (tmp_path / 'pool' / 'images' / '1' / '0.png').write_bytes(b'\x89PNG garbage')
    (tmp_path / 'pool' / 'images' / '2' / '2.png').unlink()
    stats = tmp_path / 'stats.json'
    stats.write_text(json.dumps({'1': [0.2, 0.05], '2': [0.2, 0.05]}))
    messages = []
    monkeypatch.setattr(instance_pool_module, 'print_log', lambda msg, **kw: messages.append(msg))
    transform = XPasteCopyPaste(pool_file=str(pool_file), stats_file=str(stats), check_files='all')
    assert transform.pool.check.files_missing == 1
    np.random.seed(0)
    pasted = sum(int(transform(dict(img=np.zeros((64, 64, 3), np.uint8)))['gt_is_pasted'].sum())
                 for _ in range(40))
    assert pasted > 50
    assert transform.pool.failed_rows == {0, 5}
    assert transform.pool.skipped_reads > 2
    assert len([m for m in messages if 'skipping crop' in m]) == 2


def test_same_seed_same_images_and_prob_zero_is_identity(pool_dir):
    transform = make_transform(pool_dir, blend_modes=('basic', 'gaussian'), rotate_range=30,
                               color_jitter_prob=0.5)
    results = random_results(5, 80, 90, 3)
    outputs = []
    for seed in (7, 7, 8):
        np.random.seed(seed)
        outputs.append(transform(copy.deepcopy(results))['img'])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], outputs[2])
    out = make_transform(pool_dir, prob=0.0)(copy.deepcopy(results))
    np.testing.assert_array_equal(out['img'], results['img'])
    assert out['gt_is_pasted'].tolist() == [False] * 3


def test_category_sources_and_weights(pool_dir, tmp_path):
    ann = tmp_path / 'ann.json'
    cats = [dict(id=i, name=f'c{i}', frequency=f) for i, f in zip(CATEGORY_IDS, 'rcfcr')]
    ann.write_text(json.dumps(dict(images=[], annotations=[], categories=cats)))
    by_ann = make_transform(pool_dir, category_ids=None, ann_file=str(ann),
                            category_weights=dict(r=1.0, c=0.0, f=0.0))
    np.testing.assert_array_equal(by_ann.pool.labels, [0, 1, 2, 3])
    rows = by_ann.pool.sample(np.random.default_rng(0), 200)
    assert set(by_ann.pool.category_of_rows(rows)) == {1}  # the only 'r' category with crops
    by_stats = make_transform(pool_dir, category_ids=None)  # ids of the stats file: 1, 2, 3, 4, 6
    np.testing.assert_array_equal(by_stats.pool.labels, [0, 1, 2, 3])
    with pytest.raises(ValueError, match='frequency group need category frequencies'):
        make_transform(pool_dir, category_weights=dict(r=2.0))
    with pytest.raises(ValueError, match='sample_mode'):
        make_transform(pool_dir, sample_mode='reference')
    with pytest.raises(ValueError, match='blend_modes'):
        make_transform(pool_dir, blend_modes=('possion',))


def test_bad_destination_inputs_are_reported(pool_dir):
    transform = make_transform(pool_dir)
    with pytest.raises(ValueError, match='BGR uint8'):
        transform(dict(img=np.zeros((10, 10), np.uint8)))
    results = random_results(0, 20, 20, 2)
    del results['gt_masks']
    np.random.seed(1)
    with pytest.raises(ValueError, match='with_mask=True'):
        for _ in range(5):
            transform(copy.deepcopy(results))


def test_unsorted_category_list_is_refused(tmp_path):
    ann = tmp_path / 'train.json'
    ann.write_text(json.dumps({'images': [], 'annotations': [],
                               'categories': [{'id': 3, 'name': 'c'}, {'id': 1, 'name': 'a'}]}))
    stats = tmp_path / 'area_mean_std2.json'
    stats.write_text(json.dumps({'1': [0.1, 0.0], '3': [0.1, 0.0]}))
    with pytest.raises(ValueError, match='train.json.*not sorted by id'):
        XPasteCopyPaste(pool_file=str(tmp_path / 'none.npz'), stats_file=str(stats), ann_file=str(ann))
