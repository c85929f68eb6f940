"""The phases of the GPU check: check and time every CUDA path of the project on the machine it runs on.

It lives in ``tools/`` rather than in ``xpaste_mm`` because it drives both packages (the pool phases
use ``pool_builder``), and ``xpaste_mm`` never imports ``pool_builder``.

Phases (each with its own time limit, selected with ``--phases``): mmcv CUDA ops against the CPU;
training steps of the R50 and Swin-L X-Paste configs with AMP on/off (iterations/s, peak memory,
finite loss, EMA updated); dataloader images/s of the X-Paste train pipeline per worker count; pool
building (SD-1.5-shaped generation, CLIPSeg/BiRefNet-shaped segmentation, open_clip ViT-L/14
scoring); R50 inference with post-processing. Models have random weights and the data is synthetic,
so nothing is downloaded. A phase whose requirement is absent (no CUDA, mmcv without CUDA ops, a GPU
architecture the build lacks) refuses with the fix. ``--smoke`` runs the same code with tiny models on
CPU (the test suite does). Entry point: ``tools/analysis_tools/gpu_check.py``.
"""
from .context import Settings
from .phases import PHASES, select_phases
from .report import Report, format_table
from .runner import run_checks

__all__ = ['PHASES', 'Report', 'Settings', 'format_table', 'run_checks', 'select_phases']
