"""The first vertical slice through tools/train.py and tools/test.py, as subprocesses."""
import json
import os
import re
import shutil
import subprocess
import sys

CONFIG = 'configs/xpaste/mask-rcnn_r18-tiny_fpn_40i_synthetic-lvis.py'


def _run(args, cwd, repo_root):
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_train_save_resume_and_evaluate(tmp_path, synthetic_lvis, repo_root):
    shutil.copytree(synthetic_lvis.root, tmp_path / 'data' / 'synthetic_lvis')
    config = str(repo_root / CONFIG)
    work = tmp_path / 'work'
    # 1. train 20 of 40 iterations (a "crash" at iteration 20), checkpoint every 20.
    _run([str(repo_root / 'tools/train.py'), config, '--work-dir', str(work), '--cfg-options',
          'train_cfg.max_iters=20', 'train_cfg.val_interval=1000'], tmp_path, repo_root)
    assert (work / 'iter_20.pth').is_file()
    # 2. resume automatically from the latest checkpoint and finish the 40 iterations.
    log = _run([str(repo_root / 'tools/train.py'), config, '--work-dir', str(work), '--resume'],
               tmp_path, repo_root)
    assert re.search(r'resumed epoch: \d+, iter: 20', log), log[-3000:]
    assert (work / 'iter_40.pth').is_file()
    assert 'Iter(train) [30/40]' in log and 'Iter(train) [10/40]' not in log
    assert 'lvis/bbox_AP' in log
    # 3. evaluate the final checkpoint with tools/test.py.
    _run([str(repo_root / 'tools/test.py'), config, str(work / 'iter_40.pth'), '--work-dir',
          str(tmp_path / 'test'), '--out', str(tmp_path / 'preds.pkl')], tmp_path, repo_root)
    metrics_files = list((tmp_path / 'test').rglob('*.json'))
    metrics = json.loads(metrics_files[0].read_text())
    for key in ('lvis/bbox_AP', 'lvis/segm_AP', 'lvis/bbox_APr', 'lvis/segm_APf'):
        assert isinstance(metrics[key], float) and -1.0 <= metrics[key] <= 1.0
    assert (tmp_path / 'preds.pkl').stat().st_size > 0


def test_mmdet_own_train_tool_runs_our_config(tmp_path, synthetic_lvis, repo_root):
    """custom_imports + default_scope let MMDetection's own tools/train.py build our CenterNet2."""
    from pathlib import Path

    import mmdet
    mmdet_train = Path(mmdet.__file__).parent / '.mim' / 'tools' / 'train.py'
    if not mmdet_train.is_file():
        import pytest
        pytest.skip(f'this mmdet installation ships no tools/train.py ({mmdet_train})')
    shutil.copytree(synthetic_lvis.root, tmp_path / 'data' / 'synthetic_lvis')
    config = repo_root / 'configs/xpaste/centernet2_r18-tiny_fpn_40i_synthetic-lvis.py'
    log = _run([str(mmdet_train), str(config), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                'train_cfg.max_iters=2', 'default_hooks.logger.interval=1', 'val_cfg=None',
                'val_dataloader=None', 'val_evaluator=None'], tmp_path, repo_root)
    assert 'loss_cls_stage0' in log
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()


def test_bad_checkpoint_fails_before_anything_is_written(tmp_path, repo_root, capsys):
    """A missing checkpoint (or --resume path) exits 2 with its name, and a mistyped --work-dir stays
    uncreated (the runner, which makes <work_dir>/logs, is never built)."""
    import pytest

    from xpaste_mm.apis import launch

    config = str(repo_root / CONFIG)
    missing = str(tmp_path / 'missing.pth')
    for run, extra in ((launch.test, [missing]), (launch.train, ['--resume', missing])):
        work = tmp_path / f'typo_{run.__name__}'
        with pytest.raises(SystemExit) as exit_info:
            run([config, *extra, '--work-dir', str(work)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert 'missing.pth' in err and 'does not exist' in err
        assert not work.exists()
