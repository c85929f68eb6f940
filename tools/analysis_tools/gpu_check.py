"""Check and time every CUDA path of xpaste-mm on this machine (the phases are in ``tools/gpu_phases``).

    python tools/analysis_tools/gpu_check.py                              # every phase on cuda
    python tools/analysis_tools/gpu_check.py --phases mmcv_ops train --train-iters 10 --time-limit 180
    python tools/analysis_tools/gpu_check.py --phases pool --device cuda:1 --out gpu_pool.json
    python tools/analysis_tools/gpu_check.py --smoke                      # tiny sizes on CPU (the test)

Prints one table (phase, figure, value, unit, device) and writes it as JSON. Exit status: 0 every
phase passed, 1 a phase failed or timed out, 2 a phase was refused (its message names the fix).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, which holds gpu_phases
from gpu_phases.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
