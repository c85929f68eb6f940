"""Shared tensor helpers of the model-based segmenters."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .base import probabilities_to_uint8


def images_to_tensor(images: Sequence[np.ndarray], size: tuple[int, int], mean: Sequence[float],
                     std: Sequence[float], device: str, dtype: torch.dtype) -> torch.Tensor:
    """RGB uint8 images (any sizes) -> normalised float batch (B, 3, H, W), bilinear resize."""
    batch = []
    for image in images:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        batch.append(F.interpolate(tensor, size=size, mode='bilinear', align_corners=False))
    x = torch.cat(batch).to(device)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).to(dtype)


def probabilities_to_masks(prob: torch.Tensor, images: Sequence[np.ndarray], renormalize: bool,
                           blur: int = 0) -> list[np.ndarray]:
    """Probability maps (B, h, w) or (B, 1, h, w) -> uint8 masks at each image's size (bilinear),
    optionally smoothed by a ``blur`` x ``blur`` Gaussian (odd size; 0 = none)."""
    prob = prob.float().reshape(len(images), 1, *prob.shape[-2:])
    masks = []
    for p, image in zip(prob, images):
        up = F.interpolate(p[None], size=image.shape[:2], mode='bilinear', align_corners=False)[0, 0]
        array = up.clamp(0, 1).cpu().numpy()
        if blur:
            import cv2
            array = cv2.GaussianBlur(array, (blur, blur), 0)
        masks.append(probabilities_to_uint8(array, renormalize))
    return masks


def resolve_model_source(model: str) -> tuple[str, bool]:
    """``(path or hub id, is_local)``; a string that looks like a path but does not exist raises."""
    from pathlib import Path

    path = Path(model).expanduser()
    if path.exists():
        return str(path), True
    if model.startswith(('.', '/', '~')) or model.count('/') > 1:
        raise FileNotFoundError(f'model folder {path} does not exist')
    return model, False
