"""Crop levels (reduced-size raw BGRA copies in one memory-mapped file): what is stored, which copy a
paste reads, that pasting needs no PNG decoding with them, and that pools without them still work."""
import fcntl
import itertools
import pickle
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from xpaste_mm.datasets import InstancePool, PoolIndex
from xpaste_mm.datasets import crop_store as crop_store_module
from xpaste_mm.datasets import instance_pool as instance_pool_module
from xpaste_mm.datasets.crop_store import (
    DEFAULT_LEVELS,
    CropLevels,
    CropLevelsBusyError,
    level_sizes,
    levels_paths,
    partial_paths,
    write_crop_levels,
)
from xpaste_mm.datasets.transforms import XPasteCopyPaste

SIZES = [(300, 200), (100, 40), (20, 30), (64, 64)]  # (w, h) of the crops, category 1, 1, 2, 2


def _pool(root, sizes=SIZES):
    rng = np.random.default_rng(0)
    records = []
    for n, (w, h) in enumerate(sizes):
        crop = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        path = root / 'crops' / f'{n}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), crop)
        records.append(dict(category_id=1 + n // 2, path=str(path), width=w, height=h))
    return PoolIndex.from_records(records, root=root).save(root / 'pool_index.npz')


def test_level_sizes_shrink_the_longer_side_and_end_with_the_full_crop():
    assert level_sizes(300, 200, (32, 64, 128, 256)) == [(32, 21), (64, 43), (128, 85), (256, 171)]
    assert level_sizes(100, 40, (32, 64, 128, 256)) == [(32, 13), (64, 26), (100, 40)]
    assert level_sizes(20, 30, (32, 64)) == [(20, 30)]


def test_written_levels_hold_area_resized_copies_and_select_the_smallest_large_enough(tmp_path):
    index_path = _pool(tmp_path)
    write_crop_levels(index_path, progress=False)
    levels = CropLevels.open(index_path, PoolIndex.load(index_path))
    full = cv2.imread(str(tmp_path / 'crops' / '0.png'), cv2.IMREAD_UNCHANGED)
    assert levels.size(0) == (300, 200)
    copy = levels.select(0, 50, 30)  # smallest with w >= 50 and h >= 30: the 64 x 43 copy
    assert copy.shape == (43, 64, 4) and not copy.flags.writeable
    np.testing.assert_array_equal(copy, cv2.resize(full, (64, 43), interpolation=cv2.INTER_AREA))
    assert levels.select(0, 200, 172) is None  # larger than every level: decode the PNG
    small = levels.select(2, 500, 500)  # a crop below the largest level is stored at full size
    np.testing.assert_array_equal(small, cv2.imread(str(tmp_path / 'crops' / '2.png'), cv2.IMREAD_UNCHANGED))
    _, blob = levels_paths(index_path)
    stored = [s for size in SIZES for s in level_sizes(*size, (32, 64, 128, 256))]
    expected = sum(w * h * 4 for w, h in stored)
    assert blob.stat().st_size == expected


def _transform(index_path, **kwargs):
    stats = index_path.parent / 'stats.json'
    stats.write_text('{"1": [0.15, 0.05], "2": [0.1, 0.05]}')
    return XPasteCopyPaste(pool_file=str(index_path), stats_file=str(stats), category_ids=[1, 2],
                           cache_size_mb=0, **kwargs)


def _image(seed):
    return dict(img=np.random.default_rng(seed).integers(0, 256, (160, 200, 3), dtype=np.uint8),
                img_shape=(160, 200))


def test_pasting_with_levels_decodes_no_png(tmp_path, monkeypatch):
    index_path = _pool(tmp_path)
    assert crop_store_module.main([str(index_path)]) == 0
    transform = _transform(index_path, max_num_pasted=20)
    assert transform.pool.levels is not None

    def no_decoding(path):
        raise AssertionError(f'decoded {path}')

    monkeypatch.setattr(instance_pool_module, '_decode_bgra', no_decoding)
    pasted = 0
    for seed in range(20):
        np.random.seed(seed)
        pasted += int(transform(_image(seed))['gt_is_pasted'].sum())
    assert pasted > 20 and transform.pool.skipped_reads == 0


def test_pools_without_levels_or_with_stale_levels_decode_the_png(tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr(crop_store_module, 'print_log', lambda msg, **kw: messages.append(msg))
    index_path = _pool(tmp_path)
    plain = _transform(index_path)
    assert plain.pool.levels is None
    np.random.seed(1)
    out = plain(_image(1))
    assert out['gt_is_pasted'].sum() >= 0 and plain.pool.skipped_reads == 0
    write_crop_levels(index_path, progress=False)
    _pool(tmp_path, sizes=SIZES[:3])  # the index changes afterwards: its levels no longer match
    stale = _transform(index_path)
    assert stale.pool.levels is None
    assert any('written for other index rows' in m for m in messages)


def test_unreadable_crops_are_recorded_and_skipped_and_pickling_remaps(tmp_path):
    index_path = _pool(tmp_path)
    (tmp_path / 'crops' / '1.png').write_bytes(b'corrupt')
    write_crop_levels(index_path, progress=False)
    pool = InstancePool.from_file(index_path, category_ids=[1, 2])
    crops = pool.open_crops([0, 1, 2])
    assert crops[1] is None and pool.skipped_reads == 1
    assert (crops[0].width, crops[0].height) == (300, 200) and crops[0].pixels(10, 10).shape == (21, 32, 4)
    clone = pickle.loads(pickle.dumps(pool))
    assert not clone.levels.blob.flags.owndata  # a view of the re-opened memory map, not a copy
    np.testing.assert_array_equal(clone.open_crops([3])[0].pixels(64, 64),
                                  pool.open_crops([3])[0].pixels(64, 64))



MORE_SIZES = SIZES + [(90, 120), (33, 17), (256, 40), (12, 12)]


def _written(index_path) -> tuple[bytes, dict]:
    meta_path, blob_path = levels_paths(index_path)
    with np.load(meta_path) as arrays:
        fields = ('full_size', 'level_size', 'level_offset')
        return blob_path.read_bytes(), {k: arrays[k].copy() for k in fields}


class _Killed(Exception):
    pass


_MAKE_LEVELS = crop_store_module._make_levels


def _counting_levels(monkeypatch, fail_after: int | None = None) -> list[str]:
    """Count the crops write_crop_levels decodes; with ``fail_after``, die (as if killed) after so many."""
    decoded = []

    def make_levels(task):
        if fail_after is not None and len(decoded) == fail_after:
            raise _Killed
        decoded.append(task[0])
        return _MAKE_LEVELS(task)
    monkeypatch.setattr(crop_store_module, '_make_levels', make_levels)
    return decoded


def test_killed_level_write_resumes_after_its_last_checkpoint(tmp_path, monkeypatch):
    expected = _pool(tmp_path / 'reference', MORE_SIZES)
    write_crop_levels(expected, progress=False)
    index_path = _pool(tmp_path / 'pool', MORE_SIZES)
    clock = itertools.count()  # each reading of the clock: one second later
    monkeypatch.setattr(crop_store_module, 'time', SimpleNamespace(monotonic=lambda: next(clock)))
    monkeypatch.setattr(crop_store_module, 'CHECKPOINT_S', 2.5)  # a checkpoint after rows 2 and 5 ...
    _counting_levels(monkeypatch, fail_after=5)
    with pytest.raises(_Killed):  # ... but rows 3 and 4 are written when the run dies
        write_crop_levels(index_path, progress=False)
    assert CropLevels.open(index_path) is None  # nothing final before the run ends
    decoded = _counting_levels(monkeypatch)
    write_crop_levels(index_path, progress=False)
    assert [Path(p).name for p in decoded] == ['3.png', '4.png', '5.png', '6.png', '7.png']
    blob, arrays = _written(index_path)
    reference_blob, reference_arrays = _written(expected)
    assert blob == reference_blob
    for key, value in reference_arrays.items():
        np.testing.assert_array_equal(arrays[key], value, err_msg=key)
    assert not any(p.exists() for p in partial_paths(index_path))


def test_level_write_starts_over_without_a_checkpoint_or_for_other_levels(tmp_path, monkeypatch):
    index_path = _pool(tmp_path, MORE_SIZES)
    monkeypatch.setattr(crop_store_module, 'CHECKPOINT_S', 3600.0)  # killed before its first checkpoint
    _counting_levels(monkeypatch, fail_after=5)
    with pytest.raises(_Killed):
        write_crop_levels(index_path, progress=False)
    decoded = _counting_levels(monkeypatch)
    write_crop_levels(index_path, (32, 64), progress=False)
    assert len(decoded) == len(MORE_SIZES)
    monkeypatch.setattr(crop_store_module, 'CHECKPOINT_S', 0.0)
    _counting_levels(monkeypatch, fail_after=5)
    with pytest.raises(_Killed):
        write_crop_levels(index_path, (32, 64), progress=False)
    decoded = _counting_levels(monkeypatch)
    write_crop_levels(index_path, progress=False)  # other levels: the partial rows are not reused
    assert len(decoded) == len(MORE_SIZES)
    levels = CropLevels.open(index_path, PoolIndex.load(index_path))
    assert levels.levels == DEFAULT_LEVELS and levels.select(0, 100, 60).shape == (85, 128, 4)


def test_a_second_writer_of_the_same_index_is_refused(tmp_path):
    index_path = _pool(tmp_path)
    with open(index_path, 'rb') as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CropLevelsBusyError, match='another process is writing the crop levels'):
            write_crop_levels(index_path, progress=False)
    write_crop_levels(index_path, progress=False)
