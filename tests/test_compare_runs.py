"""tools/analysis_tools/compare_runs.py on synthetic mmengine work dirs (scalars.json + dumped config)."""
from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('compare_runs', REPO / 'tools/analysis_tools/compare_runs.py')
compare_runs = importlib.util.module_from_spec(_spec)
sys.modules['compare_runs'] = compare_runs  # dataclasses look their module up
_spec.loader.exec_module(compare_runs)

CONFIG = """\
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters}, val_interval={max_iters})
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)]
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.0001))
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=[dict(type='{paste}')]))
val_evaluator = dict(type='FastLVISMetric', ann_file='{root}/lvis_v1_val.json', metric=['bbox', 'segm'])
model = dict(test_cfg=dict(rcnn=dict(max_per_img=300)))
"""


def _work_dir(root: Path, name: str, box_ap: float, max_iters: int = 100, val_step: int | None = None,
              paste: str = 'RandomFlip') -> Path:
    """A work dir as mmengine leaves it: a training run with one validation at ``val_step``."""
    run = root / name / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    step = max_iters if val_step is None else val_step
    metrics = {f'lvis/{task}_{key}': round(box_ap - (0.01 if task == 'segm' else 0) + offset, 4)
               for task in ('bbox', 'segm')
               for key, offset in (('AP', 0), ('AP50', 0.2), ('APr', -0.1), ('APc', -0.02), ('APf', 0.05))}
    lines = [dict(lr=1e-4, loss=1.0, step=step - 1), dict(metrics, step=step)]
    (run / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    (run / 'config.py').write_text(CONFIG.format(max_iters=max_iters, paste=paste, root=root / name))
    return root / name


def _groups(tmp_path: Path, baseline: list[float], method: list[float], **method_kwargs):
    base = [_work_dir(tmp_path, f'base{i}', v) for i, v in enumerate(baseline)]
    meth = [_work_dir(tmp_path, f'meth{i}', v, paste='XPasteCopyPaste', **method_kwargs)
            for i, v in enumerate(method)]
    return ['--baseline', *map(str, base), '--method', *map(str, meth)]


def test_planted_difference_is_beyond_noise(tmp_path, capsys):
    args = _groups(tmp_path, [0.250, 0.253, 0.248], [0.270, 0.268, 0.273])
    out_csv = tmp_path / 'gain.csv'
    assert compare_runs.main([*args, '--out-md', str(tmp_path / 'gain.md'), '--out-csv', str(out_csv)]) == 0
    text = capsys.readouterr().out
    bbox_ap = next(line for line in text.splitlines() if line.startswith('| bbox AP |'))
    assert '25.03 ± 0.25 (n=3)' in bbox_ap and '27.03 ± 0.25 (n=3)' in bbox_ap and '+2.00' in bbox_ap
    assert 'gain beyond noise' in bbox_ap
    assert (tmp_path / 'gain.md').read_text() == text
    rows = {r['metric']: r for r in csv.DictReader(out_csv.open())}
    assert set(rows) == {f'{t} {m}' for t in ('bbox', 'segm') for m in ('AP', 'AP50', 'APr', 'APc', 'APf')}
    low, high = float(rows['segm APr']['ci_low']), float(rows['segm APr']['ci_high'])
    assert 0 < low < 2.0 < high  # Welch CI around the planted +2 points
    # Welch t with 3 + 3 runs of equal std 0.25: half-width = t(0.975, 4) * 0.25 * sqrt(2/3) = 0.567
    assert high - low == pytest.approx(2 * 2.7764 * 0.2517 * (2 / 3) ** 0.5, rel=2e-3)


def test_noise_alone_is_within_noise(tmp_path, capsys):
    args = _groups(tmp_path, [0.250, 0.253, 0.248], [0.251, 0.247, 0.252])
    assert compare_runs.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| bbox') or
            line.startswith('| segm')]
    assert len(rows) == 10 and all('within noise' in r for r in rows)


def test_mismatched_schedules_are_refused(tmp_path, capsys):
    args = _groups(tmp_path, [0.250, 0.253], [0.270, 0.268], max_iters=200)
    assert compare_runs.main(args) == 2
    err = capsys.readouterr().err
    assert 'refusing to compare' in err and 'schedule: train_cfg' in err and 'max_iters' in err


def test_unfinished_run_is_refused_and_single_runs_get_no_verdict(tmp_path, capsys):
    unfinished = _work_dir(tmp_path, 'half', 0.25, max_iters=100, val_step=50)
    with pytest.raises(compare_runs.CompareError, match='unfinished'):
        compare_runs.read_run(unfinished)
    assert compare_runs.main(_groups(tmp_path, [0.25], [0.27])) == 0
    assert 'needs >= 2 runs per group' in capsys.readouterr().out


def test_work_dir_without_results_names_the_expected_file(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(compare_runs.CompareError, match='scalars.json'):
        compare_runs.read_run(tmp_path / 'empty')
