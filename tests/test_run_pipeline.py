"""README command 3 (tools/run_pipeline.py), reduced with --quick, as a user would run it."""
import json
import os
import re
import subprocess
import sys

import cv2


def test_quick_end_to_end_run_writes_every_promised_file(tmp_path, repo_root):
    out = tmp_path / 'demo'
    env = dict(os.environ, PYTHONPATH=str(repo_root), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, str(repo_root / 'tools/run_pipeline.py'), '--quick',
                           '--out-dir', str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # data, pool, statistics
    assert (out / 'data/synthetic_lvis/annotations/lvis_v1_train.json').is_file()
    pool = out / 'data/xpaste_pool_synthetic'
    assert (pool / 'pool/pool_index.npz').is_file()
    stats = json.loads((pool / 'category_stats.json').read_text())
    assert len(stats['categories']) == 8
    # pictures: contact sheets, paste previews, predictions
    sheets = sorted((pool / 'report/contact_sheets').glob('*.png'))
    previews = sorted((out / 'paste_previews').glob('*.png'))
    predictions = sorted(out.glob('eval/*/predictions/*.jpg'))
    assert sheets and len(previews) == 2 and len(predictions) == 4
    for picture in (sheets[0], previews[0], predictions[0]):
        assert cv2.imread(str(picture)) is not None
    # training through tools/train.py, evaluation through tools/test.py with the LVIS metric
    assert (out / 'work_dir/iter_12.pth').is_file()
    metrics = json.loads(next(out.glob('eval/*/*.json')).read_text())
    for key in ('bbox_AP', 'bbox_APr', 'bbox_APc', 'bbox_APf', 'segm_AP', 'segm_APr'):
        assert isinstance(metrics[f'lvis/{key}'], float)
    assert re.search(r'LVIS metrics: bbox_AP=-?\d+\.\d{4}', proc.stdout)
    # the summary links every picture it promises
    summary = (out / 'summary.md').read_text()
    for link in re.findall(r'!\[[^\]]*\]\(([^)]+)\)', summary):
        assert (out / link).is_file(), link
    assert 'paste_previews/' in summary and 'predictions/' in summary and 'contact_sheets/' in summary
