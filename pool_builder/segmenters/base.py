"""The segmenter interface and the registry.

A segmenter maps a batch of RGB uint8 images (H, W, 3) (sizes may differ) plus one text per image to
soft masks: uint8 (H, W) at each image's size, 0 = background, 255 = foreground. Text-prompted
segmenters (``uses_text``) use the text; the others ignore it.
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np
from mmengine.registry import Registry

from ..errors import ConfigError, UnknownSegmenterError
from ..vocabulary import safe_folder_name

SEGMENTERS = Registry('pool segmenter')


class Segmenter(ABC):
    """Base class; ``name`` is the folder the masks go to (the registry type unless renamed)."""

    uses_text: bool = False
    name: str = ''

    @abstractmethod
    def segment(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[np.ndarray]:
        """Soft masks for a batch (see the module docstring)."""

    def __call__(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[np.ndarray]:
        if len(images) != len(texts):
            raise ValueError(f'segmenter {self.name}: {len(images)} images but {len(texts)} texts')
        if not images:
            return []
        masks = self.segment(images, texts)
        if len(masks) != len(images):
            raise RuntimeError(f'segmenter {self.name} returned {len(masks)} masks for {len(images)} '
                               'images')
        for image, mask in zip(images, masks):
            if mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
                raise RuntimeError(f'segmenter {self.name} returned a {mask.dtype} mask of shape '
                                   f'{mask.shape} for an image of shape {image.shape}; expected uint8 '
                                   f'{image.shape[:2]}')
        return masks


def probabilities_to_uint8(prob: np.ndarray, renormalize: bool) -> np.ndarray:
    """Foreground probabilities in [0, 1] -> uint8 mask. With ``renormalize`` the map is stretched
    to [0, 1] per image (what X-Paste's segmenters do); a (near-)constant map is kept as is instead
    of dividing by zero."""
    prob = prob.astype(np.float32, copy=False)
    if renormalize:
        low, high = float(prob.min()), float(prob.max())
        if high - low > 1e-6:
            prob = (prob - low) / (high - low)
    return np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8)


def parse_segmenter_spec(spec: str) -> dict:
    """``"clipseg:model=/models/clipseg,renormalize=false"`` -> ``dict(type='clipseg', ...)``.

    Values are parsed as int, float or boolean when they look like one. ``name=...`` renames the
    output folder (to run one type twice with different settings).
    """
    kind, _, rest = spec.partition(':')
    config: dict = dict(type=kind.strip())
    for item in filter(None, (part.strip() for part in rest.split(','))):
        key, sep, value = item.partition('=')
        if not sep or not key.strip():
            raise ConfigError(f'segmenter spec {spec!r}: expected TYPE[:key=value,...]')
        config[key.strip()] = _parse_value(value.strip())
    return config


def _parse_value(text: str):
    lowered = text.lower()
    if lowered in ('true', 'false'):
        return lowered == 'true'
    if lowered in ('none', 'null'):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def build_segmenter(spec: str | Mapping, device: str = 'cpu') -> Segmenter:
    """A segmenter from a registry name, a ``TYPE:key=value`` spec or a config dict
    (``dict(type=..., name=..., **options)``). ``device`` is passed to segmenters that take one."""
    config = parse_segmenter_spec(spec) if isinstance(spec, str) else dict(spec)
    kind = config.get('type')
    if kind not in SEGMENTERS.module_dict:
        raise UnknownSegmenterError(f'unknown segmenter {kind!r}; registered: '
                                    f'{sorted(SEGMENTERS.module_dict)}')
    name = str(config.pop('name', kind))
    if name != safe_folder_name(name):
        raise ConfigError(f'segmenter name {name!r} is not a valid folder name')
    cls = SEGMENTERS.get(kind)
    accepted = inspect.signature(cls.__init__).parameters
    if 'device' in accepted and 'device' not in config:
        config['device'] = device
    unknown = sorted(k for k in config if k != 'type' and k not in accepted)
    if unknown:
        raise ConfigError(f'segmenter {kind!r}: unknown option(s) {unknown}; allowed: '
                          f'{sorted(k for k in accepted if k != "self")}')
    segmenter = SEGMENTERS.build(config)
    segmenter.name = name
    return segmenter
