"""X-Paste pool JSON: the numpy scanner equals ``json.load``; ``import-xpaste`` writes paths that resolve
from the index's folder, checks the crop files and refuses when none exists; the JSON pool advises
converting once."""
import json

import numpy as np
import pytest

from pool_builder import cli
from xpaste_mm.datasets import InstancePool, PoolFormatError, PoolIndex
from xpaste_mm.datasets import instance_pool as instance_pool_module
from xpaste_mm.datasets import pool_index as pool_index_module

POOL = {'2': ['*crops/b 1.png', '*/abs/c.png', '*crops/ü.png'], '0': ['*crops/a.png'], '7': [],
        '1': ['crops/no_star.png', '*crops/x,y:[1].png']}


def _columns(index: PoolIndex) -> dict:
    return dict(cats=index.category_id.tolist(), paths=[index.relpath(i) for i in range(len(index))],
                root=index.root)


@pytest.mark.parametrize('dump', [
    lambda p: json.dumps(p, ensure_ascii=False),
    lambda p: json.dumps(p, indent=2, ensure_ascii=False),
    lambda p: json.dumps(p, separators=(',', ':'), ensure_ascii=False),
    lambda p: json.dumps(p),  # \\u escapes: the json.load path
])
def test_scanner_equals_json_load(tmp_path, monkeypatch, dump):
    path = tmp_path / 'pool.json'
    path.write_text(dump(POOL), encoding='utf-8')
    scanned = _columns(PoolIndex.from_xpaste_json(path))
    monkeypatch.setattr(pool_index_module, '_scan_pool_json', lambda raw: None)
    loaded = _columns(PoolIndex.from_xpaste_json(path))
    assert scanned == loaded
    assert scanned['cats'] == [1, 2, 2, 3, 3, 3]  # sorted by category, file order within one
    assert scanned['paths'] == ['crops/a.png', 'crops/no_star.png', 'crops/x,y:[1].png', 'crops/b 1.png',
                                '/abs/c.png', 'crops/ü.png']


@pytest.mark.parametrize('text, message', [
    ('{"0": ["*a.png", "b.png|m.png"]}', 'pre-cropped RGBA'),
    ('{"x": ["*a.png"]}', "key 'x'"),
    ('{"0": ["*a.png"], "0": ["*b.png"]}', 'appears twice'),
    ('{"0": "*a.png"}', 'not a list'),
    ('{"0": ["*a.png",]}', 'cannot read JSON'),
    ('{"0": ["*"]}', 'empty path'),
])
def test_bad_json_pools_are_refused(tmp_path, text, message):
    (tmp_path / 'pool.json').write_text(text)
    with pytest.raises(PoolFormatError, match=message):
        PoolIndex.from_xpaste_json(tmp_path / 'pool.json')


def _xpaste_folder(tmp_path, names=('a.png', 'b.png', 'c.png')):
    folder = tmp_path / 'dir_a'
    (folder / 'crops').mkdir(parents=True)
    for name in names:
        (folder / 'crops' / name).write_bytes(b'png')
    pool = {'0': ['*crops/a.png', '*crops/b.png'], '4': ['*crops/c.png']}
    (folder / 'pool.json').write_text(json.dumps(pool))
    return folder / 'pool.json'


def test_import_into_another_folder_resolves_the_crops(tmp_path, capsys):
    json_path = _xpaste_folder(tmp_path)
    out = tmp_path / 'dir_b' / 'pool' / 'pool_index.npz'
    assert cli.main(['import-xpaste', '--json', str(json_path), '--out', str(out)]) == 0
    assert '3 of 3 crop files checked exist' in capsys.readouterr().out
    index = PoolIndex.load(out)
    assert index.relpath(0) == '../../dir_a/crops/a.png'  # relative to the index's folder
    assert all(index.path(i).resolve().is_file() for i in range(len(index)))
    pool = InstancePool.from_file(out, check_files='all')  # what training does
    assert pool.check.files_missing == 0


def test_import_refuses_when_no_crop_exists_and_reports_missing_ones(tmp_path, capsys):
    json_path = _xpaste_folder(tmp_path, names=())
    out = tmp_path / 'dir_b' / 'pool_index.npz'
    assert cli.main(['import-xpaste', '--json', str(json_path), '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert 'none of the 3 crop files checked exists' in err and 'dir_a/crops/a.png' in err
    assert not out.exists()
    (json_path.parent / 'crops' / 'b.png').write_bytes(b'png')
    assert cli.main(['import-xpaste', '--json', str(json_path), '--out', str(out), '--check', 'all']) == 0
    assert '1 of 3 crop files checked exist; MISSING 2' in capsys.readouterr().out


def test_json_pool_advises_converting_once(tmp_path, monkeypatch):
    json_path = _xpaste_folder(tmp_path)
    messages = []
    monkeypatch.setattr(instance_pool_module, 'print_log', lambda msg, **kw: messages.append(msg))
    monkeypatch.setattr(instance_pool_module, '_ADVISED', set())
    for _ in range(2):
        pool = InstancePool.from_file(json_path, category_ids=range(1, 6), check_files=0)
    advice = [m for m in messages if 'import-xpaste' in m]
    assert len(advice) == 1 and '~50-100x faster' in advice[0]
    np.testing.assert_array_equal(pool.category_ids, [1, 5])
