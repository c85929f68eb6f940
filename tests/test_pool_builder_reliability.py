"""pool_builder on shared clusters: file permissions under the umask, temporary files of interrupted
writes cleaned on the next run, and one writer per (stage, shard) with stale-lock takeover."""
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from pool_helpers import write_category_list, write_object_folders

from pool_builder import cli
from pool_builder.ingest import ingest_images
from pool_builder.layout import WorkDir
from pool_builder.locking import FileLock, LockHeldError
from pool_builder.records import read_jsonl
from pool_builder.workspace import open_vocabulary
from xpaste_mm.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask():
    """Set the process umask for one test."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize('mask, expected', [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_writes_get_the_permissions_of_a_plain_open(tmp_path, umask, mask, expected):
    umask(mask)
    with open(tmp_path / 'plain.txt', 'w') as f:
        f.write('x')
    assert _mode(atomic_write_text(tmp_path / 'atomic.txt', 'x')) == _mode(tmp_path / 'plain.txt') == expected


def _ingested(tmp_path, names=('mug', 'cup'), per_category=2) -> WorkDir:
    work = WorkDir(tmp_path / 'work')
    vocab = open_vocabulary(work, write_category_list(tmp_path / 'cats.txt', list(names)))
    write_object_folders(tmp_path / 'photos', list(names), per_category)
    ingest_images(work, vocab, tmp_path / 'photos', source='own')
    return work


def _scored_work(tmp_path, tiny) -> WorkDir:
    work = _ingested(tmp_path)
    for argv in (['segment', '--segmenters', 'grabcut'],
                 ['score', '--model', str(tiny.open_clip), '--pretrained', '']):
        assert cli.main([argv[0], '--work-dir', str(work.root), '--device', 'cpu', *argv[1:]]) == 0
    return work


def test_pool_files_are_group_and_world_readable_under_umask_022(tmp_path, tiny, umask):
    umask(0o022)
    work = _scored_work(tmp_path, tiny)
    assert cli.main(['filter', '--work-dir', str(work.root), '--min-clip', '-100', '--workers', '1']) == 0
    written = [work.pool_index, work.build_summary, *work.pool_images_root.rglob('*.png')]
    assert len(written) > 2 and {_mode(p) for p in written} == {0o644}


def test_temporary_files_of_an_interrupted_filter_are_removed_by_the_next_run(tmp_path, tiny):
    work = _scored_work(tmp_path, tiny)
    leftovers = [work.pool_dir / '.pool_index.k3j9x1q2.tmp.npz',
                 work.pool_dir / '.build_summary.a1b2.tmp.json',
                 work.pool_images_root / '1' / '.own_img00.grabcut.zz9.tmp.png',
                 work.root / 'done' / '.filter.q8w7.tmp.0-of-1']
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'partial')
    unrelated = work.pool_dir / '.notes.tmp.txt'  # not a temporary file of the filter's outputs
    unrelated.write_text('mine')
    assert cli.main(['filter', '--work-dir', str(work.root), '--min-clip', '-100', '--workers', '1']) == 0
    assert [p for p in leftovers if p.exists()] == [] and unrelated.is_file()


def _segment(work: WorkDir) -> list[str]:
    return ['segment', '--work-dir', str(work.root), '--segmenters', 'grabcut', '--device', 'cpu']


def test_a_second_writer_of_the_same_shard_exits_2_naming_the_holder(tmp_path, capsys):
    work = _ingested(tmp_path)
    with FileLock(work.lock_file('segment', 0, 2)):
        assert cli.main([*_segment(work), '--shard', '0/2']) == 2
        err = capsys.readouterr().err
        assert f'host {socket.gethostname()}, pid {os.getpid()}, started ' in err
        assert 'stage segment (shard 0/2)' in err and not (work.root / 'masks').exists()
        # Another shard of the same stage and count is not blocked.
        assert cli.main([*_segment(work), '--shard', '1/2']) == 0
    assert cli.main(_segment(work)) == 0
    assert not work.lock_file('segment', 0, 1).exists()  # released at the end


def test_shards_of_another_count_are_refused_while_they_run(tmp_path, capsys):
    work = _ingested(tmp_path)
    with FileLock(work.lock_file('segment', 2, 4)):  # a live shard 2/4
        assert cli.main([*_segment(work), '--shard', '1/2']) == 2
        err = capsys.readouterr().err
        assert 'is being run as shard 2/4' in err and 'while this is shard 1/2' in err
        assert f'pid {os.getpid()}' in err and not (work.root / 'masks').exists()
        assert not work.lock_file('segment', 1, 2).exists()  # its own lock released again
        assert cli.main([*_segment(work), '--shard', '0/4']) == 0  # the same count runs
    _write_lock(work.lock_file('segment', 3, 4), socket.gethostname(), _dead_pid())  # stale: ignored
    assert cli.main([*_segment(work), '--shard', '1/2']) == 0


def _write_lock(path: Path, host: str, pid: int, age_s: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(host=host, pid=pid, started=time.time() - age_s, token='old')))
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_stale_locks_are_taken_over_with_a_warning(tmp_path, capsys, monkeypatch):
    work = _ingested(tmp_path)
    lock = work.lock_file('segment', 0, 1)
    log = work.log_dir / 'pool_builder.0-of-1.log'
    _write_lock(lock, socket.gethostname(), _dead_pid())  # dead process on this host
    assert cli.main(_segment(work)) == 0
    assert 'took over the stale lock' in log.read_text() and 'is gone' in log.read_text()
    # Another host: alive as long as its heartbeat is younger than the timeout.
    monkeypatch.setenv('POOL_BUILDER_LOCK_TIMEOUT', '60')
    _write_lock(lock, 'node-elsewhere', 1234, age_s=30)
    assert cli.main(_segment(work)) == 2
    assert 'host node-elsewhere, pid 1234' in capsys.readouterr().err
    _write_lock(lock, 'node-elsewhere', 1234, age_s=90)
    assert cli.main(_segment(work)) == 0
    assert 'no heartbeat for 90 s (timeout 60 s)' in log.read_text()


def test_a_lock_taken_over_meanwhile_survives_a_late_taker(tmp_path, monkeypatch):
    path = tmp_path / 'locks' / 'score.0-of-1.lock'
    _write_lock(path, socket.gethostname(), _dead_pid())  # stale: both processes below judge it so
    first, late = FileLock(path), FileLock(path)
    raced = []

    def first_takes_over_just_before(remove):  # the late taker's removal (rename or unlink) of the lock
        def removing(target, *args, **kwargs):
            if not raced and Path(target) == path:
                raced.append(True)
                first.acquire()
            return remove(target, *args, **kwargs)
        return removing

    monkeypatch.setattr(os, 'rename', first_takes_over_just_before(os.rename))
    monkeypatch.setattr(Path, 'unlink', first_takes_over_just_before(Path.unlink))
    with pytest.raises(LockHeldError, match=f'pid {os.getpid()}'):
        late.acquire()
    monkeypatch.undo()
    assert raced and json.loads(path.read_text())['token'] == first.token  # the first taker holds it
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no leftovers of the takeovers
    first.release()
    assert not path.exists()


def test_the_heartbeat_keeps_a_long_running_lock_fresh(tmp_path, monkeypatch):
    path = tmp_path / 'locks' / 'score.0-of-1.lock'
    with FileLock(path, timeout_s=0.4):
        time.sleep(1.0)  # 2.5 timeouts: only the heartbeat keeps the mtime young
        assert time.time() - path.stat().st_mtime < 0.4
        monkeypatch.setattr(socket, 'gethostname', lambda: 'elsewhere')  # a process on another host
        with pytest.raises(LockHeldError, match=f'pid {os.getpid()}'):
            FileLock(path, timeout_s=0.4).acquire()
    assert not path.exists()


def _npz_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.slow
def test_two_concurrent_runs_of_one_shard_one_exits_2_and_the_pool_equals_a_single_run(tmp_path, tiny):
    write_category_list(tmp_path / 'cats.txt', ['mug', 'cup', 'bowl'])
    write_object_folders(tmp_path / 'photos', ['mug', 'cup', 'bowl'], 4)

    def config(name: str) -> Path:
        path = tmp_path / f'{name}.py'
        path.write_text(f"""
work_dir = {str(tmp_path / name)!r}
device = 'cpu'
vocabulary = dict(file={str(tmp_path / 'cats.txt')!r})
ingest = dict(root={str(tmp_path / 'photos')!r}, source='own')
segment = dict(segmenters=['grabcut', 'border_color'], batch_size=2)
score = dict(model={str(tiny.open_clip)!r}, pretrained=None, batch_size=4)
filter = dict(min_clip=-100.0, workers=1)
inspect = None
""")
        return path

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    command = [sys.executable, '-m', 'pool_builder', 'run', str(config('shared'))]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    locks = tmp_path / 'shared' / 'locks'
    deadline = time.monotonic() + 60
    while not (locks.is_dir() and len(list(locks.glob('*.lock'))) == 4):
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err.decode()[-2000:]
    assert second.returncode == 2
    assert f'host {socket.gethostname()}, pid {first.pid}, started ' in second.stderr
    assert cli.main(['run', str(config('single'))]) == 0
    shared, single = WorkDir(tmp_path / 'shared'), WorkDir(tmp_path / 'single')
    assert _npz_members(shared.pool_index) == _npz_members(single.pool_index)
    crops = {p.relative_to(shared.pool_dir): p.read_bytes() for p in shared.pool_images_root.rglob('*.png')}
    assert crops and crops == {p.relative_to(single.pool_dir): p.read_bytes()
                               for p in single.pool_images_root.rglob('*.png')}
    for path in shared.scores_root.rglob('*.jsonl'):
        keys = [r['key'] for r in read_jsonl(path)]
        assert len(keys) == len(set(keys)) == 4, path  # every record once
    assert not list(locks.glob('*.lock'))
