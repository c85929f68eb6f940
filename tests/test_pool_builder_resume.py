"""Killing pool_builder stages midway (SIGKILL) and resuming: the final outputs equal those of an
uninterrupted run; nothing is duplicated, lost or half-written. Also the record files' torn-tail rules."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pool_helpers import (
    png_files,
    write_category_list,
    write_object_folders,
)

from pool_builder import cli
from pool_builder.ingest import ingest_images
from pool_builder.layout import WorkDir
from pool_builder.records import RecordFileError, append_jsonl, read_jsonl
from pool_builder.workspace import open_vocabulary
from xpaste_mm.utils.io import remove_temp_files

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]




def _kill_when(args: list[str], ready, timeout: float = 180.0) -> None:
    """Run ``python -m pool_builder ARGS`` and SIGKILL it as soon as ``ready()`` is true."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    proc = subprocess.Popen([sys.executable, '-m', 'pool_builder', *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f'the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}')
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail('the run made no progress in time')
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _count(root: Path, pattern: str = '*.png') -> int:
    return sum(1 for p in root.rglob(pattern) if not p.name.startswith('.')) if root.exists() else 0


def _assert_no_duplicate_records(folder: Path) -> None:
    for path in folder.rglob('*.jsonl'):
        keys = [r['key'] for r in read_jsonl(path)]
        assert len(keys) == len(set(keys)), path


def test_killed_generate_resumes_to_the_uninterrupted_result(tmp_path, tiny):
    vocab = write_category_list(tmp_path / 'cats.txt', ['mug', 'bat_(animal)', 'AC/DC_adapter', 'crème'])
    args = ['generate', '--vocab', str(vocab), '--model', str(tiny.stable_diffusion),
            '--images-per-category', '6', '--batch-size', '2', '--num-inference-steps', '2', '--height', '64',
            '--width', '64', '--device', 'cpu']
    killed, reference = tmp_path / 'killed', tmp_path / 'reference'
    _kill_when([args[0], '--work-dir', str(killed), *args[1:]], lambda: _count(killed / 'images') >= 3)
    # Final names only ever hold complete images (a temporary '.*.tmp.png' may be half-written).
    partial = {k: v for k, v in png_files(killed / 'images').items() if not Path(k).name.startswith('.')}
    assert 3 <= len(partial) < 24
    assert all(img is not None and img.shape == (64, 64, 3) for img in partial.values()), 'half-written PNG'

    assert cli.main([args[0], '--work-dir', str(killed), *args[1:]]) == 0
    assert cli.main([args[0], '--work-dir', str(reference), *args[1:]]) == 0
    resumed, expected = png_files(killed / 'images'), png_files(reference / 'images')
    assert sorted(resumed) == sorted(expected) and len(expected) == 24  # no stale temporary files
    assert all((resumed[k] == expected[k]).all() for k in expected)
    _assert_no_duplicate_records(killed / 'manifest')
    for path in (reference / 'manifest' / 'generated').iterdir():
        expected_records = sorted(read_jsonl(path), key=lambda r: r['key'])
        resumed_records = sorted(read_jsonl(killed / 'manifest' / 'generated' / path.name),
                                 key=lambda r: r['key'])
        assert resumed_records == expected_records


def test_killed_segment_resumes_to_the_uninterrupted_result(tmp_path, tiny):
    vocab_file = write_category_list(tmp_path / 'cats.txt', [f'class_{i}' for i in range(5)])
    write_object_folders(tmp_path / 'photos', [f'class_{i}' for i in range(5)], 8, size=(96, 96))
    works = {}
    for name in ('killed', 'reference'):
        work = WorkDir(tmp_path / name)
        ingest_images(work, open_vocabulary(work, vocab_file), tmp_path / 'photos', source='own')
        works[name] = work
    args = ['segment', '--segmenters', 'grabcut', f'clipseg:model={tiny.clipseg}',
            '--batch-size', '2', '--device', 'cpu']
    masks = works['killed'].root / 'masks'
    _kill_when([args[0], '--work-dir', str(works['killed'].root), *args[1:]], lambda: _count(masks) >= 4)
    partial = {k: v for k, v in png_files(masks).items() if not Path(k).name.startswith('.')}
    assert 4 <= len(partial) < 80 and all(m is not None for m in partial.values())

    assert cli.main([args[0], '--work-dir', str(works['killed'].root), *args[1:]]) == 0
    assert cli.main([args[0], '--work-dir', str(works['reference'].root), *args[1:]]) == 0
    resumed, expected = png_files(masks), png_files(works['reference'].root / 'masks')
    assert sorted(resumed) == sorted(expected) and len(expected) == 80
    assert all((resumed[k] == expected[k]).all() for k in expected)


def test_torn_last_record_is_ignored_then_repaired(tmp_path):
    path = tmp_path / 'scores.jsonl'
    append_jsonl(path, [dict(key='a', score=1.0), dict(key='b', score=2.0)])
    with open(path, 'ab') as f:
        f.write(b'{"key": "c", "sco')  # a writer killed mid-line
    assert [r['key'] for r in read_jsonl(path)] == ['a', 'b']
    append_jsonl(path, [dict(key='c', score=3.0)])
    assert [r['key'] for r in read_jsonl(path)] == ['a', 'b', 'c']
    assert path.read_text().count('\n') == 3


def test_malformed_middle_record_names_file_and_line(tmp_path):
    path = tmp_path / 'm.jsonl'
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(RecordFileError, match=r'm\.jsonl:2: malformed record'):
        read_jsonl(path)


def test_stale_temporary_files_are_removed(tmp_path):
    (tmp_path / '.0001.x8k2.tmp.png').write_bytes(b'partial')
    (tmp_path / '0001.png').write_bytes(b'kept')
    assert remove_temp_files(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ['0001.png']
