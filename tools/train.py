"""Train a detector. Same flags as MMDetection's tools/train.py.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
"""
from xpaste_mm.apis.launch import train

if __name__ == '__main__':
    train()
