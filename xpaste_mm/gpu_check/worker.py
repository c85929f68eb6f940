"""``python -m xpaste_mm.gpu_check.worker PHASE SETTINGS ROWS STATUS BUDGET``: one phase in its own process."""
import sys

from .runner import worker_main

if __name__ == '__main__':
    sys.exit(worker_main(sys.argv[1:]))
