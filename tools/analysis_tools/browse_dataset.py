"""Write training-pipeline outputs of a config as PNGs, pasted instances outlined in their own colour.

    python tools/analysis_tools/browse_dataset.py CONFIG [--output-dir DIR] [--num 20] [--seed 0]
        [--split train|val|test] [--cfg-options k=v ...]

Each PNG shows the packed image (after every transform, e.g. ``XPasteCopyPaste``) with mask outlines
and boxes: dataset instances in green, pasted pool instances (``gt_instances.is_pasted``) in magenta,
ignored instances in grey, and the category name next to each box.
"""
from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from mmdet.registry import DATASETS
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from tqdm import tqdm

import xpaste_mm  # noqa: F401  (registers the project's transforms and models)
from xpaste_mm.utils.io import atomic_write

ORIGINAL_BGR = (0, 200, 0)
PASTED_BGR = (255, 0, 255)
IGNORED_BGR = (160, 160, 160)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--output-dir', default='work_dirs/browse_dataset', help='folder for the PNGs')
    parser.add_argument('--num', type=int, default=20, help='number of samples to write')
    parser.add_argument('--start', type=int, default=0, help='index of the first sample')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of numpy/random/torch (same seed, same images)')
    parser.add_argument('--split', choices=('train', 'val', 'test'), default='train')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def draw_instances(img_bgr: np.ndarray, instances, class_names: Sequence[str] | None, colour) -> np.ndarray:
    """Outline each instance's mask (when present) and box on ``img_bgr`` in place; label with its class."""
    if instances is None or 'bboxes' not in instances or len(instances) == 0:
        return img_bgr
    boxes = instances.bboxes
    boxes = (boxes.tensor if hasattr(boxes, 'tensor') else torch.as_tensor(boxes)).cpu().numpy()
    labels = instances.labels.cpu().numpy() if 'labels' in instances else np.zeros(len(boxes), np.int64)
    pasted = (instances.is_pasted.cpu().numpy() if 'is_pasted' in instances
              else np.zeros(len(boxes), bool))
    masks = instances.masks if 'masks' in instances else None
    if masks is not None and not isinstance(masks, np.ndarray):
        masks = masks.to_ndarray() if hasattr(masks, 'to_ndarray') else np.asarray(masks)
    for i, (box, label) in enumerate(zip(boxes, labels)):
        bgr = colour if colour is not None else (PASTED_BGR if pasted[i] else ORIGINAL_BGR)
        if masks is not None and i < len(masks):
            contours, _ = cv2.findContours(masks[i].astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(img_bgr, contours, -1, bgr, 1)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(img_bgr, (x1, y1), (max(x2 - 1, x1), max(y2 - 1, y1)), bgr, 1)
        name = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
        cv2.putText(img_bgr, name, (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, bgr, 1, cv2.LINE_AA)
    return img_bgr


def render_sample(packed: dict, class_names: Sequence[str] | None) -> np.ndarray:
    """A BGR picture of one ``PackDetInputs``/``PackXPasteInputs`` output."""
    img = packed['inputs'].permute(1, 2, 0).cpu().numpy()
    img = np.ascontiguousarray(img.astype(np.uint8) if img.dtype != np.uint8 else img)
    if img.shape[2] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    sample = packed['data_samples']
    draw_instances(img, sample.get('ignored_instances'), class_names, IGNORED_BGR)
    draw_instances(img, sample.get('gt_instances'), class_names, None)
    return img


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Write ``--num`` rendered samples; returns the PNG paths."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    class_names = dataset.metainfo.get('classes')
    output_dir = Path(args.output_dir)
    written = []
    stop = min(args.start + args.num, len(dataset))
    for index in tqdm(range(args.start, stop), desc='browse', unit='img'):
        packed = dataset[index]
        picture = render_sample(packed, class_names)
        name = Path(packed['data_samples'].metainfo.get('img_path', f'{index}')).stem
        path = output_dir / f'{index:06d}_{name}.png'

        def write(tmp: str, picture=picture) -> None:
            if not cv2.imwrite(tmp, picture):
                raise OSError(f'could not write {tmp}')
        written.append(atomic_write(path, write))
    print(f'wrote {len(written)} image(s) to {output_dir} (green: dataset instances, magenta: pasted)')
    return written


if __name__ == '__main__':
    main()
