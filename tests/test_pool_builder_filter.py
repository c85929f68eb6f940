"""pool_builder filter stage: X-Paste's selection rule, the RGBA crop, the pool index and its JSON."""
import json
import math

import cv2
import numpy as np
import pytest
from pool_helpers import object_photo, write_category_list

from pool_builder.crop import CropJob, largest_component_filled, rgba_crop, run_crop_job
from pool_builder.errors import ConfigError, PoolBuilderError
from pool_builder.filter import build_pool
from pool_builder.imaging import write_png
from pool_builder.layout import WorkDir
from pool_builder.manifest import ImageRecord, append_records
from pool_builder.records import append_jsonl
from pool_builder.selection import FilterRule, choose_segmenter, select_category
from pool_builder.workspace import open_vocabulary
from xpaste_mm.datasets import PoolIndex


def _kept(selection):
    return {c.key: c.segmenter for c in selection.kept}


def _dropped(selection):
    return {c.key: reason for c, reason in selection.dropped}


def test_ties_go_to_the_first_segmenter_in_order():
    scores = {'a': (25.0, 0.3), 'b': (25.0, 0.6)}
    assert choose_segmenter(scores, ['a', 'b']).segmenter == 'a'
    assert choose_segmenter(scores, ['b', 'a']).segmenter == 'b'
    assert choose_segmenter({'a': (math.nan, 0.3), 'b': (20.0, 0.6)}, ['a', 'b']).segmenter == 'b'
    assert choose_segmenter({'a': (math.nan, 0.3)}, ['a']) is None


def test_bar_drops_to_best_minus_tolerance_when_best_is_below_min_clip():
    candidates = {'k1': {'a': (18.0, 0.5)}, 'k2': {'a': (17.5, 0.5)}, 'k3': {'a': (17.0, 0.5)},
                  'k4': {'a': (16.9, 0.5)}}
    selection = select_category(candidates, FilterRule(min_clip=21, tolerance=1), ['a'])
    assert selection.bar == pytest.approx(17.0) and selection.best == 18.0
    assert set(_kept(selection)) == {'k1', 'k2', 'k3'}  # score == bar is kept
    assert _dropped(selection) == {'k4': 'low_score'}


def test_absolute_bar_applies_when_the_best_is_high_and_area_bounds_are_inclusive():
    candidates = {
        'at_bar': {'a': (21.0, 0.5)}, 'below': {'a': (20.99, 0.5)}, 'best': {'a': (30.0, 0.5)},
        'min_area': {'a': (25.0, 0.05)}, 'max_area': {'a': (25.0, 0.95)},
        'too_small': {'a': (25.0, 0.0499)}, 'too_big': {'a': (25.0, 0.9501)},
        # Only the chosen (best-scoring) segmenter's area counts, even if another one would pass.
        'chosen_bad_area': {'a': (26.0, 0.99), 'b': (25.0, 0.5)},
    }
    selection = select_category(candidates, FilterRule(), ['a', 'b'])
    assert selection.bar == 21.0
    assert set(_kept(selection)) == {'at_bar', 'best', 'min_area', 'max_area'}
    assert _dropped(selection) == {'below': 'low_score', 'too_small': 'area', 'too_big': 'area',
                                   'chosen_bad_area': 'area'}


def test_per_image_best_segmenter_and_zero_tolerance():
    candidates = {'x': {'a': (22.0, 0.3), 'b': (24.0, 0.4)}, 'y': {'a': (23.0, 0.3), 'b': (19.0, 0.4)}}
    selection = select_category(candidates, FilterRule(min_clip=30, tolerance=0), ['a', 'b'])
    assert selection.bar == 24.0
    assert _kept(selection) == {'x': 'b'}
    assert [c.area for c in selection.kept] == [0.4]


def test_rule_validation():
    with pytest.raises(ConfigError, match='min_area <= max_area'):
        FilterRule(min_area=0.5, max_area=0.4)
    with pytest.raises(ConfigError, match='tolerance'):
        FilterRule(tolerance=-1)


def _ring_with_blob():
    mask = np.zeros((40, 50), np.uint8)
    cv2.rectangle(mask, (10, 5), (30, 25), 255, -1)   # main square, box x 10..30, y 5..25
    mask[12:18, 16:22] = 100                           # a hole (soft value below the threshold)
    mask[30:33, 40:43] = 255                           # a separate speck
    return mask


def test_largest_component_with_holes_filled():
    filled, box = largest_component_filled(_ring_with_blob() > 128)
    assert box == (10, 5, 21, 21)
    assert filled.shape == (21, 21) and filled.all()  # the hole is filled
    assert largest_component_filled(np.zeros((5, 5), bool)) is None
    single = np.zeros((5, 5), bool)
    single[2, 3] = True
    filled, box = largest_component_filled(single)
    assert box == (3, 2, 1, 1) and filled.tolist() == [[True]]


def test_rgba_crop_alpha_is_soft_mask_times_filled_component():
    mask = _ring_with_blob()
    image = np.dstack([np.arange(50, dtype=np.uint8)[None].repeat(40, 0)] * 3)
    crop = rgba_crop(image, mask)
    assert crop.shape == (21, 21, 4)
    assert (crop[..., 3][7:13, 6:12] == 100).all()  # soft values inside the filled hole are kept
    assert (crop[..., 3][:7] == 255).all()
    np.testing.assert_array_equal(crop[0, :, 0], np.arange(10, 31))  # colour from the right place
    assert rgba_crop(image, np.full((40, 50), 128, np.uint8)) is None  # threshold is strict (> 128)
    with pytest.raises(ValueError, match='does not match'):
        rgba_crop(image, mask[:10])


def _make_work(tmp_path, scores, masks, names=('mug', 'bat_(animal)', 'AC/DC_adapter')):
    """A work dir with own images (object photos), hand-made masks and scores.

    ``scores[(cat_id, stem)] = {segmenter: (score, area)}``; ``masks[(cat_id, stem, segmenter)]`` is
    'gt' (the true object), 'empty', 'full' or 'dot' (one pixel).
    """
    work = WorkDir(tmp_path / 'work')
    vocab = open_vocabulary(work, write_category_list(tmp_path / 'cats.txt', list(names)))
    truths = {}
    for (cat_id, stem), per_segmenter in scores.items():
        category = vocab.by_id(cat_id)
        image, truth = object_photo(hash((cat_id, stem)) % 1000, (48, 64))
        path = write_png(tmp_path / 'photos' / category.safe_name / f'{stem}.png', image)
        truths[(cat_id, stem)] = (image, truth)
        append_records(work, 'own', category.safe_name, [ImageRecord(
            key=f'{category.safe_name}/{stem}', category_id=cat_id, name=category.name,
            safe_name=category.safe_name, stem=stem, image=str(path), source='own', origin=str(path))])
        for segmenter, (score, area) in per_segmenter.items():
            kind = masks.get((cat_id, stem, segmenter), 'gt')
            mask = {'gt': truth.astype(np.uint8) * 255, 'empty': np.zeros_like(truth, np.uint8),
                    'full': np.full(truth.shape, 255, np.uint8)}.get(kind)
            if kind == 'dot':  # a single foreground pixel
                mask = np.zeros_like(truth, np.uint8)
                mask[10, 20] = 255
            write_png(work.mask_path(segmenter, category.safe_name, stem), mask)
            append_jsonl(work.score_file(segmenter, category.safe_name),
                         [dict(key=f'{category.safe_name}/{stem}', score=score, area=area)])
    return work, vocab, truths


def test_build_pool_writes_crops_index_summary_and_xpaste_json(tmp_path):
    scores = {
        (1, 'a'): {'grabcut': (25.0, 0.3), 'clipseg': (22.0, 0.3)},
        (1, 'b'): {'grabcut': (20.0, 0.3), 'clipseg': (24.0, 0.3)},
        (1, 'c'): {'grabcut': (19.0, 0.3)},                          # below the bar of 21
        (2, 'a'): {'grabcut': (15.0, 0.3)},                          # best below min_clip: bar 14
        (2, 'b'): {'grabcut': (14.5, 0.99)},                         # area out of bounds
        (3, 'a'): {'grabcut': (30.0, 0.3)},                          # selected, but its mask is empty
    }
    work, vocab, truths = _make_work(tmp_path, scores, {(3, 'a', 'grabcut'): 'empty'})
    summary = build_pool(work, vocab, FilterRule(), segmenters=['grabcut', 'clipseg'],
                         xpaste_json='pool/xpaste.json')
    assert summary.kept == 3 and summary.candidates == 6
    assert dict(summary.dropped) == {'low_score': 1, 'area': 1, 'empty_mask': 1}
    index = PoolIndex.load(work.pool_index)
    rows = {(r['category_id'], r['path'].rsplit('/', 1)[-1]): r for r in index.records()}
    assert set(rows) == {(1, 'a.grabcut.png'), (1, 'b.clipseg.png'), (2, 'a.grabcut.png')}
    row = rows[(1, 'b.clipseg.png')]
    assert (row['source'], row['segmenter'], row['score'], row['area']) == ('own', 'clipseg', 24.0,
                                                                             pytest.approx(0.3))
    for (cat_id, name), row in rows.items():
        crop = cv2.imread(str(index.root / row['path']), cv2.IMREAD_UNCHANGED)
        image, truth = truths[(cat_id, name.split('.')[0])]
        ys, xs = np.nonzero(truth)
        assert crop.shape == (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1, 4)
        assert (row['width'], row['height']) == (crop.shape[1], crop.shape[0])
        np.testing.assert_array_equal(crop[..., 3] > 0, truth[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
        object_colour = image[ys[0], xs[0]]
        assert (crop[..., 2::-1][crop[..., 3] > 0] == object_colour).all()  # BGRA on disk = RGB pixels
    built = json.loads(work.build_summary.read_text())
    by_id = {c['id']: c for c in built['categories']}
    assert by_id[2]['bar'] == pytest.approx(14.0) and by_id[2]['dropped'] == {'area': 1}
    assert by_id[3]['kept'] == 0 and by_id[3]['dropped'] == {'empty_mask': 1}
    # X-Paste JSON: 0-based labels, '*'-prefixed absolute paths; imports back to the same pool.
    exported = json.loads((work.pool_dir / 'xpaste.json').read_text())
    assert sorted(exported) == ['0', '1']
    assert all(p.startswith('*/') for paths in exported.values() for p in paths)
    imported = PoolIndex.from_xpaste_json(work.pool_dir / 'xpaste.json', category_ids=vocab.ids)
    assert sorted((r['category_id'], r['path']) for r in imported.records()) == sorted(
        (r['category_id'], r['path']) for r in index.records())


def test_rebuild_reuses_crops_and_removes_deselected_ones(tmp_path):
    scores = {(1, 'a'): {'grabcut': (25.0, 0.3)}, (1, 'b'): {'grabcut': (23.0, 0.3)}}
    work, vocab, _ = _make_work(tmp_path, scores, {})
    build_pool(work, vocab)
    crop_a, crop_b = work.pool_image(1, 'a', 'grabcut'), work.pool_image(1, 'b', 'grabcut')
    made = crop_a.stat().st_mtime_ns
    assert crop_b.is_file()
    summary = build_pool(work, vocab, FilterRule(min_clip=24, tolerance=0))
    assert summary.kept == 1 and crop_a.stat().st_mtime_ns == made
    assert not crop_b.exists()
    build_pool(work, vocab, FilterRule(min_clip=24, tolerance=0), overwrite=True)
    assert crop_a.stat().st_mtime_ns > made


def test_unreadable_image_is_reported_not_fatal(tmp_path):
    scores = {(1, 'a'): {'grabcut': (25.0, 0.3)}, (1, 'b'): {'grabcut': (25.0, 0.3)}}
    work, vocab, _ = _make_work(tmp_path, scores, {})
    (tmp_path / 'photos' / 'mug' / 'b.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    summary = build_pool(work, vocab)
    assert summary.kept == 1 and summary.dropped['read_error'] == 1 and not summary.ok
    assert 'b.png' in summary.errors[0] and 'not a readable image' in summary.errors[0]


def test_filter_without_scores_is_a_clear_error(tmp_path):
    work = WorkDir(tmp_path / 'work')
    vocab = open_vocabulary(work, write_category_list(tmp_path / 'cats.txt', ['mug']))
    with pytest.raises(PoolBuilderError, match='no CLIP scores found'):
        build_pool(work, vocab)


def test_parallel_crops_match_serial_ones(tmp_path):
    scores = {(1, s): {'grabcut': (25.0, 0.3)} for s in 'abcdef'}
    work, vocab, _ = _make_work(tmp_path, scores, {})
    build_pool(work, vocab, workers=1)
    serial = {p.name: p.read_bytes() for p in (work.pool_dir / 'images' / '1').iterdir()}
    build_pool(work, vocab, workers=2, overwrite=True)
    parallel = {p.name: p.read_bytes() for p in (work.pool_dir / 'images' / '1').iterdir()}
    assert serial == parallel and len(serial) == 6


def test_one_pixel_wide_or_high_component_gives_no_crop(tmp_path):
    """X-Paste (clean_pool) drops an instance whose largest component has x_max <= x_min or
    y_max <= y_min, i.e. is a single row or column; a 2x2 component is kept."""
    image = np.full((20, 30, 3), 90, np.uint8)
    regions = {'row': (slice(5, 6), slice(3, 12)), 'column': (slice(2, 15), slice(7, 8)),
               'dot': (slice(4, 5), slice(4, 5)), 'square': (slice(4, 6), slice(10, 12))}
    results = {}
    for name, region in regions.items():
        mask = np.zeros((20, 30), np.uint8)
        mask[region] = 255
        job = CropJob(key=name, category_id=1, image=str(write_png(tmp_path / f'{name}.png', image)),
                      mask=str(write_png(tmp_path / f'{name}.mask.png', mask)),
                      output=str(tmp_path / 'out' / f'{name}.png'), segmenter='s', score=25.0, area=0.1,
                      source='own')
        results[name] = run_crop_job(job)
    assert {n: r.error for n, r in results.items()} == {
        'row': 'degenerate_mask', 'column': 'degenerate_mask', 'dot': 'degenerate_mask', 'square': None}
    assert (results['square'].width, results['square'].height) == (2, 2)
    assert not (tmp_path / 'out' / 'dot.png').exists()


def test_build_pool_counts_degenerate_masks_as_drops_not_errors(tmp_path):
    scores = {(1, 'a'): {'grabcut': (25.0, 0.3)}, (1, 'b'): {'grabcut': (25.0, 0.3)}}
    work, vocab, _ = _make_work(tmp_path, scores, {(1, 'b', 'grabcut'): 'dot'})
    summary = build_pool(work, vocab)
    assert summary.kept == 1 and summary.ok
    assert dict(summary.dropped) == {'degenerate_mask': 1}


def test_crop_levels_are_rewritten_only_when_the_pool_changed(tmp_path):
    from xpaste_mm.datasets.crop_store import levels_paths

    scores = {(1, 'a'): {'grabcut': (25.0, 0.3)}, (1, 'b'): {'grabcut': (23.0, 0.3)}}
    work, vocab, _ = _make_work(tmp_path, scores, {})
    build_pool(work, vocab)
    meta, _ = levels_paths(work.pool_index)
    written = meta.stat().st_mtime_ns
    build_pool(work, vocab)                                       # nothing changed: no crop decoded
    assert meta.stat().st_mtime_ns == written
    build_pool(work, vocab, FilterRule(min_clip=24, tolerance=0))  # other rows: levels follow the index
    assert meta.stat().st_mtime_ns > written
    written = meta.stat().st_mtime_ns
    build_pool(work, vocab, FilterRule(min_clip=24, tolerance=0), overwrite=True)  # crops rewritten
    assert meta.stat().st_mtime_ns > written
