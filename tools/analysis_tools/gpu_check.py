"""Check and time every CUDA path of xpaste-mm on this machine (see ``xpaste_mm.gpu_check``).

    python tools/analysis_tools/gpu_check.py                              # every phase on cuda
    python tools/analysis_tools/gpu_check.py --phases mmcv_ops train --train-iters 10 --time-limit 180
    python tools/analysis_tools/gpu_check.py --phases pool --device cuda:1 --out gpu_pool.json
    python tools/analysis_tools/gpu_check.py --smoke                      # tiny sizes on CPU (the test)

Prints one table (phase, figure, value, unit, device) and writes it as JSON. Exit status: 0 every
phase passed, 1 a phase failed or timed out, 2 a phase was refused (its message names the fix).
"""
import sys

from xpaste_mm.gpu_check.cli import main

if __name__ == '__main__':
    sys.exit(main())
