"""Per-instance geometry and colour augmentation of a BGRA crop before it is pasted."""
from __future__ import annotations

import math

import cv2
import numpy as np


def target_sizes(normal: np.ndarray, aspect_jitter: np.ndarray, size_mean: np.ndarray, size_std: np.ndarray,
                 crop_w: np.ndarray, crop_h: np.ndarray, img_h: int, img_w: int, min_scale_px: float = 10,
                 max_scale: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """X-Paste's size prior: pasted ``(width, height)`` in pixels for each instance.

    Relative size ``s = clip(mean + std * normal, min_scale_px / img_h, max_scale)``; target area
    ``s^2 * img_h * img_w`` pixels; aspect ``crop_w / crop_h * aspect_jitter``. Arrays broadcast;
    ``normal`` ~ N(0, 1) and ``aspect_jitter`` ~ U(0.8, 1.2) are drawn by the caller.
    """
    scale = np.clip(size_mean + size_std * normal, min_scale_px / img_h, max_scale)
    area = scale ** 2 * img_h * img_w
    ratio = crop_w / crop_h * aspect_jitter
    return np.sqrt(ratio * area).astype(np.int64), np.sqrt(area / ratio).astype(np.int64)


def rotate_expanded(bgra: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate counter-clockwise by ``angle_deg`` about the centre, growing the canvas to fit the whole
    crop; new pixels are transparent (all channels 0)."""
    height, width = bgra.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle_deg, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w = max(int(math.ceil(height * sin + width * cos)), 1)
    new_h = max(int(math.ceil(height * cos + width * sin)), 1)
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    return cv2.warpAffine(bgra, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))


def jitter_colors(bgr: np.ndarray, alpha: np.ndarray, brightness: float, contrast: float, saturation: float,
                  hue: float) -> np.ndarray:
    """Colour jitter of a BGR uint8 crop with explicit factors (1 = unchanged) and a hue shift in
    fractions of the colour circle; the contrast pivot is the alpha-weighted mean grey."""
    out = bgr.astype(np.float32) * brightness
    weights = alpha.astype(np.float32)
    grey = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
    pivot = float((grey * weights).sum() / max(weights.sum(), 1.0))
    out = (out - pivot) * contrast + pivot
    grey = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
    out = (out - grey[..., None]) * saturation + grey[..., None]
    out = np.clip(out, 0, 255).astype(np.uint8)
    if hue:
        hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(hue * 180))) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return out
