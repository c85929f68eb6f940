"""One phase in its own process.

    PYTHONPATH=tools python -m gpu_phases.worker PHASE SETTINGS_JSON ROWS_JSONL STATUS_JSON BUDGET_S
"""
import sys

from .runner import worker_main

if __name__ == '__main__':
    sys.exit(worker_main(sys.argv[1:]))
