"""CLIPSeg (text-prompted segmentation) through transformers; default ``CIDAS/clipseg-rd64-refined``.

Post-processing follows X-Paste's CLIPSeg exporter minus MatteFormer: sigmoid, bilinear upsampling to
the image size, a 5x5 Gaussian blur and per-image min-max renormalisation.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..torch_utils import torch_dtype
from .base import SEGMENTERS, Segmenter
from .torch_utils import probabilities_to_masks, resolve_model_source

DEFAULT_CLIPSEG = 'CIDAS/clipseg-rd64-refined'


@SEGMENTERS.register_module(name='clipseg')
class CLIPSegSegmenter(Segmenter):
    """``model``: hub id or local folder (``save_pretrained`` of model + processor)."""

    uses_text = True

    def __init__(self, model: str = DEFAULT_CLIPSEG, device: str = 'cpu', dtype: str = 'fp32',
                 blur: int = 5, renormalize: bool = True) -> None:
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        source, _ = resolve_model_source(model)
        self.device, self.dtype = device, torch_dtype(dtype, device)
        self.processor = CLIPSegProcessor.from_pretrained(source)
        self.model = CLIPSegForImageSegmentation.from_pretrained(source)
        self.model.to(device=device, dtype=self.dtype).eval()
        self.blur, self.renormalize = blur, renormalize

    @torch.inference_mode()
    def segment(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[np.ndarray]:
        inputs = self.processor(text=list(texts), images=list(images), return_tensors='pt', padding=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs['pixel_values'] = inputs['pixel_values'].to(self.dtype)
        logits = self.model(**inputs).logits
        return probabilities_to_masks(logits.sigmoid(), images, self.renormalize, self.blur)
