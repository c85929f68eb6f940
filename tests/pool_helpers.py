"""Helpers for the pool_builder tests: synthetic object photos and cached tiny local models."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from pool_builder.imaging import write_png


def object_photo(seed: int, size: tuple[int, int] = (96, 96), textured: bool = True,
                 shape: str = 'ellipse') -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 "photo of a single object": one filled shape, well inside the frame, on a plain
    or textured (smooth colour field + stripes + noise) background. Returns (image, bool mask)."""
    rng = np.random.default_rng(seed)
    height, width = size
    if textured:
        coarse = rng.integers(60, 200, size=(3, 3, 3)).astype(np.uint8)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        yy, xx = np.mgrid[0:height, 0:width]
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 14)
        image += 12 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)[..., None]
        image += rng.normal(0, 4, size=image.shape)
        image = np.clip(image, 0, 255).astype(np.uint8)
    else:
        image = np.empty((height, width, 3), np.uint8)
        image[:] = rng.integers(150, 250, size=3)
    # A saturated object colour that differs from the muted background.
    hsv = np.uint8([[[rng.integers(0, 180), 230, 220]]])
    colour = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    mask = np.zeros((height, width), np.uint8)
    cx, cy = width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6)
    rx, ry = width * rng.uniform(0.18, 0.3), height * rng.uniform(0.18, 0.3)
    if shape == 'ellipse':
        cv2.ellipse(mask, (round(cx), round(cy)), (round(rx), round(ry)), rng.uniform(0, 180), 0, 360, 1, -1)
    else:
        cv2.rectangle(mask, (round(cx - rx), round(cy - ry)), (round(cx + rx), round(cy + ry)), 1, -1)
    image[mask.astype(bool)] = colour
    return image, mask.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def write_object_folders(root: Path, names: list[str], per_category: int, size=(96, 96),
                         seed: int = 0) -> dict[str, list[Path]]:
    """``root/<name>/<k>.png`` object photos (textured on even k, plain on odd)."""
    written = {}
    for c, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        written[name] = []
        for k in range(per_category):
            image, _ = object_photo(seed + 100 * c + k, size, textured=k % 2 == 0,
                                    shape='ellipse' if c % 2 == 0 else 'rectangle')
            written[name].append(write_png(folder / f'img{k:02d}.png', image))
    return written


def tiny_models_for_session(tmp_path_factory):
    """The tiny local models, built once per test session (shared by all pool_builder test files)."""
    from pool_builder.testing import build_tiny_models

    return build_tiny_models(tmp_path_factory.getbasetemp() / 'pool_builder_tiny_models')


def write_category_list(path: Path, names: list[str]) -> Path:
    path.write_text('\n'.join(names) + '\n', encoding='utf-8')
    return path


def png_files(root: Path) -> dict[str, np.ndarray]:
    """``{relative path: decoded pixels}`` of every PNG under ``root`` (hidden files included)."""
    return {p.relative_to(root).as_posix(): cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            for p in sorted(root.rglob('*.png'))}

