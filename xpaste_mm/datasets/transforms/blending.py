"""Blending a pasted instance into the destination image (X-Paste's ``CP_METHOD`` choices).

All functions work in place on the window of the image covered by the instance (plus a 2-pixel
border for ``gaussian``) and give the same pixels as blending with full-image canvases. Images are
BGR uint8 ``(H, W, 3)``; results are truncated to uint8 like the original.
"""
from __future__ import annotations

import cv2
import numpy as np

BLEND_MODES = ('basic', 'gaussian', 'alpha')
_BLUR = 5  # side of the box filter of the 'gaussian' mode
_HALF = _BLUR // 2


def blend_instance(img: np.ndarray, x0: int, y0: int, bgr: np.ndarray, alpha: np.ndarray, mask: np.ndarray,
                   mode: str) -> None:
    """Blend an instance whose visible window (``bgr`` ``(h, w, 3)``, ``alpha`` and 0/1 ``mask``
    ``(h, w)`` uint8) lies inside ``img`` at ``(x0, y0)``.

    ``basic``: hard paste of the mask pixels. ``gaussian``: linear blend with the mask smoothed by a
    5x5 box filter (the crop counts as black outside its window, as on X-Paste's zero canvas).
    ``alpha``: linear blend with the crop's soft alpha / 255.
    """
    height, width = mask.shape
    dst = img[y0:y0 + height, x0:x0 + width]
    if mode == 'basic':
        copied = cv2.copyTo(bgr, mask, dst)  # writes into the image window (30x faster than np.copyto)
        if copied is not dst:
            dst[...] = copied
    elif mode == 'alpha':
        weight = alpha.astype(np.float32)[..., None] * np.float32(1 / 255)
        dst[...] = (dst * (1 - weight) + bgr * weight).astype(np.uint8)
    elif mode == 'gaussian':
        _blend_blurred(img, x0, y0, bgr, mask)
    else:
        raise ValueError(f'blend mode {mode!r} is not one of {BLEND_MODES}')


def _blend_blurred(img: np.ndarray, x0: int, y0: int, bgr: np.ndarray, mask: np.ndarray) -> None:
    """Box-blurred mask blend, computed on a window 2 * _HALF larger so its borders are exact."""
    img_h, img_w = img.shape[:2]
    height, width = mask.shape
    # computation window (clipped to the image, where the blur reflects exactly as on a full canvas)
    cx0, cy0 = max(x0 - 2 * _HALF, 0), max(y0 - 2 * _HALF, 0)
    cx1, cy1 = min(x0 + width + 2 * _HALF, img_w), min(y0 + height + 2 * _HALF, img_h)
    weight = np.zeros((cy1 - cy0, cx1 - cx0), dtype=np.float32)
    weight[y0 - cy0:y0 - cy0 + height, x0 - cx0:x0 - cx0 + width] = mask
    src = np.zeros((cy1 - cy0, cx1 - cx0, 3), dtype=np.uint8)
    src[y0 - cy0:y0 - cy0 + height, x0 - cx0:x0 - cx0 + width] = bgr
    weight = cv2.blur(weight, (_BLUR, _BLUR))
    # written window: where the blurred mask can be non-zero
    wx0, wy0 = max(x0 - _HALF, 0), max(y0 - _HALF, 0)
    wx1, wy1 = min(x0 + width + _HALF, img_w), min(y0 + height + _HALF, img_h)
    inner = (slice(wy0 - cy0, wy1 - cy0), slice(wx0 - cx0, wx1 - cx0))
    w = weight[inner][..., None]
    dst = img[wy0:wy1, wx0:wx1]
    dst[...] = (dst * (1 - w) + src[inner] * w).astype(np.uint8)
