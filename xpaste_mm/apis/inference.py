"""Inference helpers: the image demo (drawn predictions) on top of MMDetection's DetInferencer."""
from __future__ import annotations

import os
from pathlib import Path


def run_image_demo(inputs: str | os.PathLike, config: str | os.PathLike, weights: str | None = None,
                   device: str = 'cpu', score_thr: float = 0.3, out_dir: str | os.PathLike = 'outputs',
                   batch_size: int = 1, save_vis: bool = True, save_pred: bool = True,
                   palette: str = 'random') -> list[Path]:
    """Predict on an image or folder; returns the written visualisation files (``out_dir/vis``).

    Masks, boxes and the dataset's category names (config ``metainfo``) are drawn for predictions
    with score > ``score_thr``. Without ``weights`` the model keeps its initialisation (for tests).
    """
    from mmdet.apis import DetInferencer

    inputs = Path(inputs)
    if not inputs.exists():
        raise FileNotFoundError(f'input {inputs} does not exist (expected an image file or a folder)')
    inferencer = DetInferencer(model=str(config), weights=weights, device=device, palette=palette,
                               show_progress=False)
    inferencer(str(inputs), batch_size=batch_size, out_dir=str(out_dir), no_save_vis=not save_vis,
               no_save_pred=not save_pred, pred_score_thr=score_thr)
    vis_dir = Path(out_dir) / 'vis'
    return sorted(vis_dir.iterdir()) if vis_dir.is_dir() else []
