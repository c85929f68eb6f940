"""Weight-free segmenters built on OpenCV: the pipeline runs with no model download.

Both assume what X-Paste's prompts ("a photo of a single <name>") produce: one object, mostly away
from the image border, so the border shows background.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .base import SEGMENTERS, Segmenter, probabilities_to_uint8


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, scale


def _border_band(height: int, width: int, fraction: float) -> np.ndarray:
    """Bool (H, W): the outer band of width ``fraction`` x the short side (at least 1 pixel)."""
    band = max(1, round(fraction * min(height, width)))
    mask = np.zeros((height, width), dtype=bool)
    mask[:band], mask[-band:], mask[:, :band], mask[:, -band:] = True, True, True, True
    return mask


def _upscale_soft(prob: np.ndarray, height: int, width: int, feather_px: float) -> np.ndarray:
    """Bilinear resize of a [0, 1] map to (H, W) plus an optional Gaussian feather (sigma in px)."""
    if prob.shape != (height, width):
        prob = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
    if feather_px > 0:
        prob = cv2.GaussianBlur(prob, (0, 0), feather_px)
    return prob


@SEGMENTERS.register_module(name='grabcut')
class GrabCutSegmenter(Segmenter):
    """GrabCut seeded from the image border: a border band of ``border`` x the short side is
    definite background, everything else probable foreground. Runs at ``max_side`` pixels, then the
    binary result is resized back and feathered by ``feather`` pixels of the small image.
    OpenCV's RNG is re-seeded per image, so results do not depend on batch order."""

    def __init__(self, border: float = 0.04, iterations: int = 4, max_side: int = 256,
                 feather: float = 0.75, seed: int = 0) -> None:
        self.border, self.iterations, self.max_side = border, iterations, max_side
        self.feather, self.seed = feather, seed

    def segment(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[np.ndarray]:
        return [self._one(image) for image in images]

    def _one(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        small, scale = _downscale(image, self.max_side)
        h, w = small.shape[:2]
        labels = np.full((h, w), cv2.GC_PR_FGD, dtype=np.uint8)
        labels[_border_band(h, w, self.border)] = cv2.GC_BGD
        background = np.zeros((1, 65), np.float64)
        foreground = np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(self.seed)
        try:
            cv2.grabCut(np.ascontiguousarray(small), labels, None, background, foreground,
                        self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # degenerate colour statistics (e.g. a flat image): no object found
            return np.zeros((height, width), dtype=np.uint8)
        binary = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.float32)
        soft = _upscale_soft(binary, height, width, self.feather / scale)
        return probabilities_to_uint8(soft, renormalize=False)


@SEGMENTERS.register_module(name='border_color')
class BorderColorSegmenter(Segmenter):
    """Foreground = pixels whose CIE-Lab colour is far from every background colour seen on the
    border (``clusters`` k-means centres of the border band). The distance is mapped to a soft
    mask: 0 up to the border pixels' own 99th-percentile distance (plus ``margin``), 1 from
    ``soft_range`` Lab units above it. Fast; best on plain or weakly textured backgrounds."""

    def __init__(self, border: float = 0.03, clusters: int = 8, max_side: int = 256,
                 margin: float = 4.0, soft_range: float = 16.0, seed: int = 0) -> None:
        self.border, self.clusters, self.max_side = border, clusters, max_side
        self.margin, self.soft_range, self.seed = margin, soft_range, seed

    def segment(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[np.ndarray]:
        return [self._one(image) for image in images]

    def _one(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        small, scale = _downscale(image, self.max_side)
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
        lab[..., 0] *= 100.0 / 255.0  # OpenCV stores L in 0..255; bring it to the usual 0..100
        band = _border_band(*lab.shape[:2], self.border)
        samples = lab[band]
        k = int(min(self.clusters, len(np.unique(samples, axis=0))))
        cv2.setRNGSeed(self.seed)
        _, _, centres = cv2.kmeans(samples, k, None, (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER,
                                                      20, 0.5), 1, cv2.KMEANS_PP_CENTERS)
        distance = np.full(lab.shape[:2], np.inf, dtype=np.float32)
        for centre in centres:
            np.minimum(distance, np.linalg.norm(lab - centre, axis=2), out=distance)
        threshold = float(np.percentile(distance[band], 99)) + self.margin
        prob = np.clip((distance - threshold) / self.soft_range, 0.0, 1.0)
        prob = cv2.morphologyEx(prob, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        soft = _upscale_soft(prob, height, width, 0.5 / scale)
        return probabilities_to_uint8(soft, renormalize=False)


@SEGMENTERS.register_module(name='full')
class FullImageSegmenter(Segmenter):
    """The whole image as foreground (X-Paste's ``full``): scores the raw image, e.g. to compare
    generators."""

    def segment(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[np.ndarray]:
        return [np.full(image.shape[:2], 255, dtype=np.uint8) for image in images]
