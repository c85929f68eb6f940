"""RGBA crops of selected instances (the per-image work of the filter stage; runs in worker processes).

For a soft mask ``m`` (uint8) and its image: foreground = ``m > 128``; keep the largest connected
region (the outer contour enclosing the largest area) with its holes filled, as X-Paste does; alpha =
``m`` inside the filled region and 0 outside (soft values are kept); crop to the region's tight box.
Empty masks give no crop (reason ``empty_mask``) instead of an error; a region only one pixel wide or
high gives none either (reason ``degenerate_mask``; X-Paste drops boxes with ``x_max <= x_min`` or
``y_max <= y_min``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import ImageReadError
from .imaging import read_image_bgr, read_mask, write_png

FOREGROUND_THRESHOLD = 128
EMPTY_MASK = 'empty_mask'
DEGENERATE_MASK = 'degenerate_mask'
#: ``CropResult.error`` values that mean "no usable object" rather than a file problem.
NO_CROP_REASONS = (EMPTY_MASK, DEGENERATE_MASK)


@dataclass(frozen=True)
class CropJob:
    """One selected instance: source image + chosen mask -> RGBA crop at ``output``."""

    key: str
    category_id: int
    image: str
    mask: str
    output: str
    segmenter: str
    score: float
    area: float
    source: str
    reuse: bool = True


@dataclass(frozen=True)
class CropResult:
    """``error`` is None on success, one of :data:`NO_CROP_REASONS`, or a message naming the file at
    fault."""

    job: CropJob
    width: int = 0
    height: int = 0
    error: str | None = None
    reused: bool = False


def largest_component_filled(binary: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The largest connected foreground region of a bool mask with its holes filled, cropped to its
    box (X-Paste's rule: among the outer contours, the one enclosing the largest area, filled).

    Returns ``(filled, (x, y, w, h))`` with ``filled`` bool (h, w) and the box in pixels (x, y =
    top-left; w, h >= 1), or None when the mask is empty. Only outer contours are traced, which is
    much cheaper than labelling every pixel.
    """
    contours, _ = cv2.findContours(binary.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    # Enclosed area first; the point count breaks ties between zero-area (1 px wide) contours.
    largest = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    x, y, w, h = cv2.boundingRect(largest)
    filled = np.zeros((h, w), np.uint8)
    cv2.drawContours(filled, [largest], -1, 1, thickness=cv2.FILLED, offset=(-x, -y))
    return filled.view(bool), (x, y, w, h)


def rgba_crop(image: np.ndarray, mask: np.ndarray,
              threshold: int = FOREGROUND_THRESHOLD) -> np.ndarray | None:
    """(h, w, 4) crop of ``image`` (3 channels, any order, kept) with alpha from ``mask``; None if
    the mask has no pixel above ``threshold``. As in X-Paste, the photo's colour is kept under zero
    alpha: the one-pixel rim that bilinear resizing adds to a pasted mask (alpha > 0) blends the
    object with its own background there, not with black."""
    if mask.shape != image.shape[:2]:
        raise ValueError(f'mask shape {mask.shape} does not match image shape {image.shape[:2]}')
    found = largest_component_filled(mask > threshold)
    if found is None:
        return None
    filled, (x, y, w, h) = found
    alpha = np.where(filled, mask[y:y + h, x:x + w], np.uint8(0))
    return np.dstack([image[y:y + h, x:x + w], alpha])


def run_crop_job(job: CropJob) -> CropResult:
    """Make one crop; never raises (errors are returned). With ``job.reuse`` an output newer than
    both inputs is kept as it is."""
    try:
        if job.reuse and _is_up_to_date(job):
            with Image.open(job.output) as existing:
                width, height = existing.size
            return CropResult(job, width, height, reused=True)
        image = read_image_bgr(job.image)
        mask = read_mask(job.mask)
        if mask.shape != image.shape[:2]:
            return CropResult(job, error=f'mask {job.mask} is {mask.shape[1]}x{mask.shape[0]} but image '
                                         f'{job.image} is {image.shape[1]}x{image.shape[0]}')
        crop = rgba_crop(image, mask)
        if crop is None:
            return CropResult(job, error=EMPTY_MASK)
        if min(crop.shape[:2]) < 2:
            return CropResult(job, error=DEGENERATE_MASK)
        write_png(job.output, crop, rgb=False)
        return CropResult(job, crop.shape[1], crop.shape[0])
    except (ImageReadError, OSError, ValueError) as exc:
        return CropResult(job, error=f'{type(exc).__name__}: {exc}')


def _is_up_to_date(job: CropJob) -> bool:
    try:
        made = os.stat(job.output).st_mtime_ns
    except FileNotFoundError:
        return False
    return all(made >= os.stat(p).st_mtime_ns for p in (job.image, job.mask) if Path(p).exists())


def init_worker() -> None:
    """Pool initializer: one OpenCV thread per worker process (the pool provides the parallelism)."""
    cv2.setNumThreads(1)
