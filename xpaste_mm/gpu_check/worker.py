"""One phase in its own process.

    python -m xpaste_mm.gpu_check.worker PHASE SETTINGS_JSON ROWS_JSONL STATUS_JSON BUDGET_S
"""
import sys

from .runner import worker_main

if __name__ == '__main__':
    sys.exit(worker_main(sys.argv[1:]))
