"""tools/install.sh's verification step (tools/check_install.py): true diagnoses, right exit codes.

The regression behind these tests: on a fresh interpreter mmcv was verified before mmengine was
installed, and the failure was reported as a stale wheel, sending users into a 10-35 minute rebuild.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _run_check(repo_root: Path, fake_packages: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(fake_packages))
    return subprocess.run([sys.executable, str(repo_root / 'tools/check_install.py'), *args],
                          env=env, capture_output=True, text=True, timeout=120)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_missing_mmengine_is_named_and_no_rebuild_is_advised(tmp_path, repo_root):
    # An interpreter lacking mmengine: the import fails exactly as it does when the package is absent.
    _write(tmp_path / 'mmengine/__init__.py',
           "raise ModuleNotFoundError(\"No module named 'mmengine'\", name='mmengine')\n")
    proc = _run_check(repo_root, tmp_path, '--mmcv-only')
    assert proc.returncode == 1, proc.stderr
    assert "No module named 'mmengine'" in proc.stderr            # the underlying exception is shown
    assert "the Python package 'mmengine' is missing" in proc.stderr
    assert 'pip install mmengine' in proc.stderr
    assert 'needs no rebuild' in proc.stderr
    assert not re.search(r'stale|delete .* and rerun|rebuild it', proc.stderr)


def test_undefined_symbol_is_diagnosed_as_a_wheel_built_against_another_torch(tmp_path, repo_root):
    _write(tmp_path / 'mmcv/__init__.py', "__version__ = '2.1.0'\n")
    _write(tmp_path / 'mmcv/ops/__init__.py',
           "raise ImportError('/x/mmcv/_ext.so: undefined symbol: _ZN3c1017RegisterOperators')\n")
    proc = _run_check(repo_root, tmp_path, '--mmcv-only', '--wheel-dir', '/cache/wheels/mmcv-x')
    assert proc.returncode == 3, proc.stderr                      # mmcv itself is broken: reinstall it
    assert 'undefined symbol' in proc.stderr
    assert 'built against another build' in proc.stderr
    assert 'delete /cache/wheels/mmcv-x' in proc.stderr


def test_wrong_mmcv_version_asks_for_a_reinstall(tmp_path, repo_root):
    _write(tmp_path / 'mmcv/__init__.py', "__version__ = '2.2.0'\n")
    proc = _run_check(repo_root, tmp_path, '--mmcv-only')
    assert proc.returncode == 3
    assert 'mmcv 2.2.0 is installed, 2.1.0 is required' in proc.stderr


def test_working_stack_passes(repo_root, tmp_path):
    proc = _run_check(repo_root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('[check] OK: torch ')


def test_install_script_installs_mmengine_before_it_first_verifies_mmcv(repo_root):
    lines = (repo_root / 'tools/install.sh').read_text().splitlines()
    first_check = next(i for i, line in enumerate(lines) if '"${CHECK[@]}"' in line)
    installs_mmengine = [i for i, line in enumerate(lines) if '"${PIP[@]}"' in line and 'mmengine' in line]
    assert installs_mmengine and installs_mmengine[0] < first_check
