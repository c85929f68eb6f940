"""Run the selected phases, each with its own time limit, and collect the report.

By default every phase runs in its own Python process: a hard limit (the process group is killed),
a clean CUDA context and peak-memory counters per phase, and a crash (or a poisoned CUDA context)
stays inside its phase. Figures are written as they are measured, so a killed phase keeps them.
``in_process=True`` runs phases in this process (limits are then only the phases' cooperative
budgets); the CPU smoke test uses it.
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from .context import CheckFailed, PhaseContext, Settings
from .phases import Phase
from .report import PhaseStatus, Report, Row, environment, read_rows
from .requirements import PhaseRefused

TOOLS_DIR = Path(__file__).resolve().parents[1]   # holds this package
REPO_ROOT = TOOLS_DIR.parent
#: Share of a phase's limit its timed loops may use; the rest covers set-up and tear-down.
BUDGET_SHARE = 0.75


def execute(phase: Phase, settings: Settings, budget_s: float,
            sink: Callable[[Row], None]) -> tuple[str, str]:
    """Run one phase here; returns ``(status, message)``."""
    ctx = PhaseContext(phase.name, settings, budget_s, sink)
    try:
        phase.function()(ctx)
        return 'ok', ''
    except PhaseRefused as exc:
        return 'refused', str(exc)
    except CheckFailed as exc:
        return 'failed', str(exc)
    except Exception as exc:  # noqa: BLE001  (any error fails this phase only; the traceback is printed)
        traceback.print_exc()
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return 'failed', f'{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})'
    finally:
        _release_memory()


def _release_memory() -> None:
    gc.collect()
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def run_checks(settings: Settings, phases: Sequence[Phase], default_limit: float | None = None,
               limits: dict[str, float] | None = None, in_process: bool = False, argv: Sequence[str] = (),
               log: Callable[[str], None] = print) -> Report:
    """Run ``phases`` in order; a phase's limit is ``limits[name]``, else ``default_limit``, else its own."""
    Path(settings.work_dir).mkdir(parents=True, exist_ok=True)
    report = Report(meta=environment(settings.device, settings.smoke, list(argv)))
    report.meta['settings'] = settings.to_dict()
    for phase in phases:
        limit = (limits or {}).get(phase.name) or default_limit or (
            phase.smoke_limit_s if settings.smoke else phase.limit_s)
        log(f'[gpu_check] {phase.name}: {phase.summary} (limit {limit:.0f} s)')
        started = time.perf_counter()
        if in_process:
            rows: list[Row] = []
            status, message = execute(phase, settings, BUDGET_SHARE * limit, rows.append)
        else:
            status, message, rows = _run_isolated(phase, settings, limit)
        seconds = time.perf_counter() - started
        report.rows.extend(rows)
        report.phases.append(PhaseStatus(phase.name, status, round(seconds, 2), limit, message))
        log(f'[gpu_check] {phase.name}: {status} in {seconds:.1f} s' + (f': {message}' if message else ''))
    return report


def _run_isolated(phase: Phase, settings: Settings, limit: float) -> tuple[str, str, list[Row]]:
    folder = Path(tempfile.mkdtemp(prefix=f'{phase.name}.', dir=settings.work_dir))
    try:
        settings_file, rows_file, status_file = (folder / name for name in
                                                 ('settings.json', 'rows.jsonl', 'status.json'))
        settings_file.write_text(json.dumps(settings.to_dict()))
        env = dict(os.environ)
        paths = [str(TOOLS_DIR), str(REPO_ROOT), env.get('PYTHONPATH')]
        env['PYTHONPATH'] = os.pathsep.join(filter(None, paths))
        command = [sys.executable, '-m', f'{__package__}.worker', phase.name, str(settings_file),
                   str(rows_file), str(status_file), str(BUDGET_SHARE * limit)]
        process = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            code = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            message = f'killed at its {limit:.0f} s limit (raise it with --time-limit {phase.name}=SECONDS)'
            return 'timeout', message, read_rows(rows_file)
        finally:
            if process.poll() is None:  # interrupted (Ctrl-C): do not leave the phase running
                os.killpg(process.pid, signal.SIGKILL)
        rows = read_rows(rows_file)
        if status_file.is_file():
            result = json.loads(status_file.read_text())
            return result['status'], result['message'], rows
        message = f'the phase process exited with status {code} before reporting (killed for memory?)'
        return 'failed', message, rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def worker_main(argv: Sequence[str]) -> int:
    """Entry of a phase process: ``PHASE SETTINGS_JSON ROWS_JSONL STATUS_JSON BUDGET_S``."""
    from xpaste_mm.utils.io import atomic_write_json

    from .phases import BY_NAME

    name, settings_file, rows_file, status_file, budget = argv

    def sink(row: Row) -> None:
        with open(rows_file, 'a', encoding='utf-8') as f:
            f.write(json.dumps(asdict(row)) + '\n')

    settings = Settings(**json.loads(Path(settings_file).read_text()))
    status, message = execute(BY_NAME[name], settings, float(budget), sink)
    atomic_write_json(status_file, dict(status=status, message=message))
    return 0
