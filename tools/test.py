"""Evaluate a checkpoint. Same flags as MMDetection's tools/test.py.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
"""
from xpaste_mm.apis.launch import test

if __name__ == '__main__':
    test()
