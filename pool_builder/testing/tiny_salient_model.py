"""A tiny salient-object network with BiRefNet's interface, shipped as "remote code".

:func:`pool_builder.testing.build_tiny_birefnet` copies this file into a model folder and points
the config's ``auto_map`` at it, so ``AutoModelForImageSegmentation.from_pretrained(folder,
trust_remote_code=True)`` loads it exactly the way it loads BiRefNet. It depends only on torch and
transformers (the copied file is imported on its own).
"""
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel


class TinySalientConfig(PretrainedConfig):
    model_type = 'tiny_salient'

    def __init__(self, channels: int = 8, **kwargs):
        self.channels = channels
        super().__init__(**kwargs)


class TinySalientNet(PreTrainedModel):
    """Two convolutions at half resolution and a 1x1 head; like BiRefNet, ``forward`` returns a list
    of logit maps (B, 1, h, w) whose last element is the full-resolution prediction."""

    config_class = TinySalientConfig

    def __init__(self, config: TinySalientConfig):
        super().__init__(config)
        width = config.channels
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, 1, 1)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor) -> list:
        coarse = self.head(self.body(pixel_values))
        fine = nn.functional.interpolate(coarse, size=pixel_values.shape[-2:], mode='bilinear',
                                         align_corners=False)
        return [coarse, fine]
