"""BiRefNet salient-object segmentation through transformers' ``AutoModelForImageSegmentation``.

BiRefNet (and models sharing its interface, e.g. ``briaai/RMBG-2.0``) publish their architecture as
repository code, so loading needs ``trust_remote_code=True``: it runs Python code from the model
repository (or local folder). Pin ``revision`` to a reviewed commit for hub ids. The model takes a
1024x1024 ImageNet-normalised batch and returns a list of logit maps, the last one being the final
prediction; masks are its sigmoid, resized to the image size and (by default) min-max renormalised
like X-Paste's salient segmenters.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..torch_utils import torch_dtype
from .base import SEGMENTERS, Segmenter
from .torch_utils import images_to_tensor, probabilities_to_masks, resolve_model_source

DEFAULT_BIREFNET = 'ZhengPeng7/BiRefNet'
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_birefnet(model: str = DEFAULT_BIREFNET, device: str = 'cpu', dtype: str = 'auto',
                  trust_remote_code: bool = True, revision: str | None = None) -> torch.nn.Module:
    """Load a BiRefNet-style model from a hub id or a local folder (config.json with ``auto_map``)."""
    from transformers import AutoModelForImageSegmentation

    source, _ = resolve_model_source(model)
    net = AutoModelForImageSegmentation.from_pretrained(source, trust_remote_code=trust_remote_code,
                                                        revision=revision)
    return net.to(device=device, dtype=torch_dtype(dtype, device)).eval()


@SEGMENTERS.register_module(name='birefnet')
class BiRefNetSegmenter(Segmenter):
    """``model``: hub id or local folder; or pass a ready ``module`` (same call interface)."""

    def __init__(self, model: str = DEFAULT_BIREFNET, device: str = 'cpu', dtype: str = 'auto',
                 input_size: int = 1024, trust_remote_code: bool = True, revision: str | None = None,
                 renormalize: bool = True, module: torch.nn.Module | None = None) -> None:
        self.net = module if module is not None else load_birefnet(model, device, dtype,
                                                                   trust_remote_code, revision)
        self.device = device
        self.dtype = next(self.net.parameters()).dtype
        self.input_size, self.renormalize = input_size, renormalize

    @torch.inference_mode()
    def segment(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[np.ndarray]:
        x = images_to_tensor(images, (self.input_size, self.input_size), IMAGENET_MEAN, IMAGENET_STD,
                             self.device, self.dtype)
        outputs = self.net(x)
        logits = outputs[-1] if isinstance(outputs, (list, tuple)) else outputs
        return probabilities_to_masks(logits.float().sigmoid(), images, self.renormalize)
